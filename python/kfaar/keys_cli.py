"""``kfaar keygen``, ``kfaar key passwd | info``, and the passphrase/key-file options other
commands share."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kfaar.keys import Key, PassphraseKdf, default_kdf


def read_passphrase(env_var: str | None, *, confirm: bool = False, prompt: str = "Key file passphrase",
                    option: str = "--passphrase-env") -> str:
    """The key-file passphrase from ``$env_var`` when named, else an interactive hidden prompt."""
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise click.UsageError(f"{option}: environment variable {env_var} is unset or empty")
        return value
    return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)


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


@click.group("key")
def key_group() -> None:
    """Manage a sealed key file: change its passphrase, or check that it opens and show its
    fingerprint."""


@key_group.command("passwd")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@passphrase_option
@click.option("--new-passphrase-env", metavar="VAR",
              help="Read the new passphrase from this environment variable instead of prompting.")
def passwd(path: Path, passphrase_env: str | None, new_passphrase_env: str | None) -> None:
    """Seal the key in PATH under a new passphrase (a new salt and nonce, the current default
    KDF), replacing the file atomically; the key itself, its fingerprint and everything made
    with it are unchanged."""
    key = load_key(path, passphrase_env)
    new = read_passphrase(new_passphrase_env, confirm=True, prompt="New passphrase", option="--new-passphrase-env")
    key.save(path, passphrase=new, overwrite=True)
    click.echo(f"resealed {path}  fingerprint {key.fingerprint}  ({describe_kdf(Key.file_kdf(path))})")


@key_group.command("info")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@passphrase_option
@click.option("--service", metavar="NAME", default=None,
              help="Also show the fingerprint of this service's subkey (what --service NAME uses).")
def info(path: Path, passphrase_env: str | None, service: str | None) -> None:
    """Open the key file at PATH (a check that the passphrase still opens it) and show the key's
    fingerprint (the one protected templates name), and how the file is sealed. Nothing secret
    is shown."""
    kdf = Key.file_kdf(path)
    key = load_key(path, passphrase_env)
    click.echo(f"key file     {path}")
    click.echo(f"sealed with  AES-256-GCM, passphrase through {describe_kdf(kdf)}")
    click.echo(f"fingerprint  {key.fingerprint}")
    if service is not None:
        click.echo(f"service      {service}: fingerprint {key.for_relying_party(service).fingerprint}")
    current = default_kdf(kdf.salt)
    if kdf != current:
        click.echo(f"note: new key files use {describe_kdf(current)}; `kfaar key passwd {path}` reseals this one so")


def describe_kdf(kdf: PassphraseKdf) -> str:
    """The KDF and its cost in words, e.g. "Argon2id (64 MiB, 3 passes, 4 lanes)"."""
    if kdf.algorithm == "argon2id":
        return f"Argon2id ({kdf.memory_cost_kib // 1024} MiB, {kdf.iterations} passes, {kdf.lanes} lanes)"
    return f"scrypt (N = 2^{kdf.log2_n}, r = {kdf.r}, p = {kdf.p})"
