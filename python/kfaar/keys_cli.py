"""``kfaar keygen`` and the passphrase/key-file options other commands share."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kfaar.keys import Key


def read_passphrase(env_var: str | None, *, confirm: bool = False) -> str:
    """The key-file passphrase from ``$env_var`` when named, else an interactive hidden prompt."""
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise click.UsageError(f"--passphrase-env: environment variable {env_var} is unset or empty")
        return value
    return click.prompt("Key file passphrase", hide_input=True, confirmation_prompt=confirm)


def passphrase_option(f):
    return click.option(
        "--passphrase-env",
        metavar="VAR",
        help="Read the key file's passphrase from this environment variable instead of prompting.",
    )(f)


def load_key(path: str | Path, env_var: str | None) -> Key:
    return Key.load(path, passphrase=read_passphrase(env_var))


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@passphrase_option
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def keygen(out: Path, passphrase_env: str | None, force: bool) -> None:
    """Generate a random 256-bit key and seal it into OUT (AES-256-GCM, mode 0600)."""
    key = Key.generate()
    try:
        key.save(out, passphrase=read_passphrase(passphrase_env, confirm=True), overwrite=force)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out}  fingerprint {key.fingerprint}")
