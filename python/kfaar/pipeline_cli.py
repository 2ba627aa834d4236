"""``kfaar anonymize``, ``kfaar enroll``, ``kfaar verify``: the pipeline from the shell."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
import numpy as np

log = logging.getLogger(__name__)

_key_file = click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), required=True,
                         help="Sealed key file (kfaar keygen).")
_passphrase_env = click.option("--passphrase-env", metavar="VAR", default=None,
                               help="Read the key file's passphrase from this environment variable (else prompt).")
_service = click.option("--service", metavar="NAME", default=None,
                        help="Use the key's own subkey for this service (Key.for_relying_party): the virtual faces "
                             "and templates made for two services cannot be linked. Give the same NAME to "
                             "anonymize, enroll and verify.")


def _load_key(key_file: str, passphrase_env: str | None, service: str | None = None):
    """The sealed key at ``key_file``, or its subkey for ``service``."""
    from kfaar.keys import Key

    if service is not None and not service:
        raise click.BadParameter("the service's name must not be empty", param_hint="--service")
    if passphrase_env:
        if passphrase_env not in os.environ:
            raise click.UsageError(f"--passphrase-env: environment variable {passphrase_env} is not set")
        passphrase = os.environ[passphrase_env]
    else:
        passphrase = click.prompt("Key passphrase", hide_input=True)
    key = Key.load(key_file, passphrase=passphrase)
    return key.for_relying_party(service) if service is not None else key


def _optional_key(key_file: str | None, passphrase_env: str | None, service: str | None):
    """:func:`_load_key` where ``--key`` may be left out (None then); ``--service`` needs it."""
    if key_file is None:
        if service is not None:
            raise click.UsageError("--service: a service's subkey needs the key (--key)")
        return None
    return _load_key(key_file, passphrase_env, service)


def _targets(paths: tuple[str, ...], out: Path, suffix: str = ".png") -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(source, output file) for every photo under ``paths``, and the files left out because
    they lie in ``out`` (an earlier run's results, when ``out`` is inside an input folder).

    A folder's photos keep their path below it, a named file goes to the top of ``out``; a
    result's name ends in ``suffix`` (its format's). Outputs never overwrite each other —
    ``a.jpg`` and ``a.png`` become ``a.jpg.png`` and ``a.png.png``, and names still shared get
    ``-2``, ``-3``... in input order — nor an input:
    a path named on the command line that lies in ``out`` is refused before any photo is read."""
    from kfaar.faces import iter_images

    out_abs = out.resolve()
    pairs, inside = [], []
    for p in paths:
        root = Path(p)
        if root.resolve().is_relative_to(out_abs):
            raise click.UsageError(f"--out: {p} lies in the output folder {out}; write the results elsewhere")
        for f in iter_images(root):
            if f.resolve().is_relative_to(out_abs):
                inside.append(f)
                continue
            rel = f.relative_to(root) if root.is_dir() else Path(f.name)
            pairs.append((f, rel))

    def suffixes(rels: list[Path]) -> dict[Path, set[str]]:  # output name -> the sources' suffixes
        seen: dict[Path, set[str]] = {}
        for (f, _), r in zip(pairs, rels):
            seen.setdefault(r, set()).add(f.suffix)
        return seen

    rels = [rel.with_suffix(suffix) for _, rel in pairs]
    mixed = {r for r, sfx in suffixes(rels).items() if len(sfx) > 1}  # a.jpg and a.png: say which
    rels = [rel.with_name(rel.name + suffix) if r in mixed else r for (_, rel), r in zip(pairs, rels)]
    taken: set[Path] = set()
    for i, r in enumerate(rels):  # still shared (one name in two folders): number the later ones
        n = 1
        while rels[i] in taken:
            n += 1
            rels[i] = r.with_name(f"{r.stem}-{n}{r.suffix}")
        taken.add(rels[i])
    return [(f, out / r) for (f, _), r in zip(pairs, rels)], inside


@click.command("anonymize")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@_key_file
@_passphrase_env
@_service
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpeg"]), default="png", show_default=True,
              help="Results as PNG (lossless) or JPEG (a fifth to a quarter of the bytes; written at --jpeg-quality "
                   "with full-resolution colour, which the code that authenticates the face is written in). "
                   "A photo with transparency is skipped as JPEG.")
@click.option("--png-compression", type=click.IntRange(0, 9), default=1, show_default=True,
              help="zlib level of the PNG results (0-9). The pixels are the same at every level; 6, Pillow's "
                   "default, writes a 12-megapixel photo 3-5x slower than 1 for 10-25% fewer bytes.")
@click.option("--jpeg-quality", type=click.IntRange(50, 100), default=95, show_default=True,
              help="Quality of JPEG results (50-100). Lower loses more of the code: see docs/THREAT_MODEL.md.")
@click.option("--no-small-faces", is_flag=True,
              help="Skip the second, full-resolution search of photos larger than 1,920 px, which finds their "
                   "faces under ~40 px (~0.3-0.45 s of a 12-megapixel photo's time). Such faces then stay as they are.")
@click.option("--grey-as-colour", is_flag=True,
              help="Write the results of photos without colour (black-and-white, or grey) in colour, as the "
                   "virtual faces are made: their faces then carry the code that authenticates them (kfaar "
                   "verify), with a colour tint. By default they are written grey, and will not authenticate.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a JSON file listing each result with the boxes (x, y, w, h) of the faces replaced "
                   "in it, and the files skipped: to check what was replaced.")
@click.option("--skip-existing", is_flag=True,
              help="Keep results already in --out (an interrupted run's: each is written whole or not at all) "
                   "and do not read their photos again. Whether they were made with this key is not checked.")
def anonymize(paths: tuple[str, ...], key_file: str, passphrase_env: str | None, service: str | None, out_dir: str,
              fmt: str, png_compression: int, jpeg_quality: int, no_small_faces: bool, grey_as_colour: bool,
              report_path: str | None, skip_existing: bool) -> None:
    """Replace every face in PATHS (photos or folders) with the key's virtual face.

    Results are PNG (or JPEG) files in --out, a folder's photos under their path in it; a
    photo's transparency and RGB colour profile are kept, its EXIF and other metadata (place,
    camera, the original's thumbnail) are not. Every frame of an animated GIF, WebP or PNG, or
    page of a TIFF, is anonymized into one animated PNG (as JPEG: the first alone). Unreadable
    files are reported and skipped. The next photos are read and the last results written while
    a photo is anonymized."""
    import dataclasses

    from kfaar.files import ResultFormat, anonymize_files
    from kfaar.pipeline import Anonymizer, AnonymizerOptions

    out = Path(out_dir)
    result_format = ResultFormat(fmt, png_compression=png_compression, jpeg_quality=jpeg_quality,
                                 grey_as_colour=grey_as_colour)
    targets, inside = _targets(paths, out, result_format.suffix)
    kept = {target for _, target in targets if target.is_file()} if skip_existing else set()
    targets = [t for t in targets if t[1] not in kept]
    key = _load_key(key_file, passphrase_env, service)
    out.mkdir(parents=True, exist_ok=True)
    options = AnonymizerOptions()
    if no_small_faces:
        options = dataclasses.replace(options, detector=dataclasses.replace(options.detector, fine_max_side=None))
    with Anonymizer(options) as anon:
        done = anonymize_files(targets, anon, key, result_format, progress=True)
    if report_path:
        import json

        from kfaar._atomic import atomic_write

        with atomic_write(report_path) as f:
            f.write((json.dumps(done.to_json(), indent=1) + "\n").encode())
    click.echo(f"{done.report.ok} photo(s), {done.faces} face(s) anonymized into {out}")
    faceless = sum(1 for w in done.written if not w.boxes)
    if faceless:
        click.echo(f"no face found in {faceless} photo(s): their results are the photos as they were"
                   + (f" (listed in {report_path})" if report_path else " (--report FILE lists them)"), err=True)
    if done.grey_with_faces:
        click.echo(f"note: {len(done.grey_with_faces)} photo(s) without colour written grey; their faces carry no "
                   "code and will not authenticate (--grey-as-colour keeps it, in colour)"
                   + (f"; listed in {report_path}" if report_path else ""), err=True)
    if kept:
        click.echo(f"kept {len(kept)} result(s) already in {out} (--skip-existing)", err=True)
    for f, n, why in done.several_frames:
        click.echo(f"note: {f} has {n} frames or pages; only the first was anonymized and written: {why}", err=True)
    if inside:
        click.echo(f"left out {len(inside)} photo(s) already in {out}", err=True)
    for f, err in done.report.failed:
        click.echo(f"skipped {f}: {err}", err=True)


@click.command("enroll")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True,
              help="Template file: a .npy of the face's SFace embedding, or with --key a protected template "
                   "(JSON; .kft by convention). Written under exactly this name.")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Sealed key file: write a protected template, which matches only virtual faces made with "
                   "this key, for a service to keep instead of the face's own embedding.")
@_passphrase_env
@_service
def enroll(photo: str, out_path: str, key_file: str | None, passphrase_env: str | None, service: str | None) -> None:
    """Compute the identity template of PHOTO's main face (on this device).

    Without --key the template is the face's SFace embedding: whoever holds it can find the
    person in any photo collection indexed with SFace, so keep it on the device. With --key it
    is a protected template (the person's identity in the key's space, what every virtual face
    made with the key carries anyway): a new key revokes it."""
    from kfaar.keys import write_private
    from kfaar.pipeline import Authenticator

    key = _optional_key(key_file, passphrase_env, service)
    with Authenticator() as auth:
        template = auth.enroll(photo)
        data = auth.protect(template, key).to_bytes() if key is not None else _npy_bytes(template)
    write_private(Path(out_path), data, overwrite=True, what="template file")
    kind = "protected template" if key is not None else "template (the face's SFace embedding)"
    click.echo(f"{kind} written to {out_path}")


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


@click.command("verify")
@click.argument("virtual_photo", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Sealed key file (kfaar keygen). Needed for a plain template; for a protected one it is "
                   "optional and checked against the key the template was made with.")
@_passphrase_env
@_service
@click.option("--template", "template_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The template kfaar enroll wrote: plain (.npy) or protected (--key).")
@click.option("--min-code-match", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Refuse a face whose code carrier's pilot match is below this: no kfaar code, or a copy too "
                   "degraded to read (0.75 refuses faces without a code; see THREAT_MODEL.md).")
def verify(virtual_photo: str, key_file: str | None, passphrase_env: str | None, service: str | None,
           template_path: str, min_code_match: float) -> None:
    """Check whether VIRTUAL_PHOTO shows the enrolled person; exit code 1 if not (2 if it
    cannot tell: no face, a bad template or key file).

    A plain template needs the key (the face is read and turned back into an identity with it);
    a protected template does not: the code the face carries is compared with it directly."""
    from kfaar.pipeline import Authenticator, AuthenticatorOptions
    from kfaar.templates import ProtectedTemplate

    template = _load_template(template_path)
    protected = isinstance(template, ProtectedTemplate)
    if key_file is None and not protected:
        raise click.UsageError("--key: a plain template (.npy) is read with the key; give the key file "
                               "(only a protected template, kfaar enroll --key, is verified without it)")
    key = _optional_key(key_file, passphrase_env, service)
    with Authenticator(AuthenticatorOptions(min_code_match=min_code_match)) as auth:
        r = auth.verify_result(virtual_photo, key, template)
    if r.score is None:
        click.echo(f"NO MATCH no readable kfaar code in the face (pilot match {r.code_match:.3f}, "
                   f"a virtual face reads >= {min_code_match:.2f})")
        raise SystemExit(1)
    click.echo(f"{'MATCH' if r.match else 'NO MATCH'} score={r.score:.3f} threshold={auth.threshold:.3f} "
               f"code={r.code_match:.3f}")
    raise SystemExit(0 if r.match else 1)


def _load_template(path: str):
    """The template ``kfaar enroll`` wrote at ``path``: a (128,) float32 array from a .npy file
    (never unpickled), or a :class:`~kfaar.templates.ProtectedTemplate` from its JSON file;
    anything else is refused, naming the file."""
    from kfaar.templates import ProtectedTemplate, identity_vector

    what = f"{path} is not a kfaar template (a .npy file of 128 numbers or a protected template, written by kfaar enroll)"
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
            fh.seek(0)
            t = np.load(fh, allow_pickle=False) if head == b"\x93NUMPY" else None
    except (ValueError, OSError, EOFError) as err:
        raise click.BadParameter(f"{what}: {err}", param_hint="--template") from None
    if t is None:
        if head.lstrip()[:1] != b"{":
            raise click.BadParameter(f"{what}: it is neither a .npy file nor a protected template",
                                     param_hint="--template")
        try:
            return ProtectedTemplate.load(path)  # its errors name the file
        except (ValueError, OSError) as err:
            raise click.BadParameter(str(err), param_hint="--template") from None
    if not isinstance(t, np.ndarray) or t.shape != (128,) or not np.issubdtype(t.dtype, np.floating):
        shape = getattr(t, "shape", None)
        raise click.BadParameter(f"{what}: it holds {getattr(t, 'dtype', type(t).__name__)} of shape {shape}",
                                 param_hint="--template")
    try:
        return identity_vector(t, "its values").astype(np.float32)
    except ValueError as err:
        raise click.BadParameter(f"{what}: {err}", param_hint="--template") from None
