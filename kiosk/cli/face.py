"""`kiosk enroll`, `kiosk identify`, `kiosk unenroll`: face templates from the command line.

The technician's tools: enrol from photo files (with the consent form's reference), check an
enrolment and the threshold by identifying photos (nearest elders with their distances), and
delete an elder's templates when consent is withdrawn. A running kiosk picks up the change
within a few seconds (it watches the template set).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from kiosk.cli.context import context_of

NEAREST_SHOWN = 3
# Top-level commands (main.py adds this group without a name). numpy, dlib and OpenCV are
# imported inside the commands: `kiosk --help` must not load them.
face_app = typer.Typer()


def _open(ctx: typer.Context) -> tuple[Any, Any, Any]:
    """(config, store, templates) from the CLI context; exit 2 if the database or key is bad."""
    from kiosk.face.templates import FaceKey, FaceKeyError, TemplateStore

    context = context_of(ctx)
    config = context.config()
    store = context.store()
    try:
        key = FaceKey.load(context.data_dir)
    except FaceKeyError as exc:
        store.close()
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return config, store, TemplateStore(store, key)


def _quiet() -> None:
    # face_recognition_models imports pkg_resources, which warns on every start.
    warnings.filterwarnings("ignore", category=UserWarning, module="face_recognition_models")


@face_app.command("enroll")
def enroll(
    ctx: typer.Context,
    elder_id: Annotated[str, typer.Argument(help="the elder's roster id")],
    photos: Annotated[list[Path], typer.Argument(help="one or more photos of the elder alone")],
    consent: Annotated[
        str, typer.Option("--consent", help="reference of the signed consent form (required)")
    ],
) -> None:
    """Enrol an elder's face from photo files; each photo passes the quality gates or is
    refused with the reason. Exit 1 if any photo was refused."""
    from kiosk.face.enrol import Enrolled, Enroller, load_image

    _quiet()
    config, store, templates = _open(ctx)
    enroller = Enroller.from_config(templates, config.face)
    refused = 0
    try:
        for photo in photos:
            result = enroller.enrol(
                elder_id, load_image(photo), consent, dt.datetime.now(config.site.tz)
            )
            if isinstance(result, Enrolled):
                typer.echo(f"{photo}: {result.message}")
            else:
                refused += 1
                detail = f" ({result.detail})" if result.detail else ""
                typer.echo(f"{photo}: 未登记 [{result.reason}] {result.message}{detail}", err=True)
    finally:
        store.close()
    raise typer.Exit(1 if refused else 0)


@face_app.command("identify")
def identify(
    ctx: typer.Context,
    photos: Annotated[list[Path], typer.Argument(help="photos to identify")],
) -> None:
    """For each face of each photo: the decision (elder, or none), distance, margin, and the
    nearest elders with their distances."""
    import numpy as np

    from kiosk.face.detect import make_detector
    from kiosk.face.encode import encode_face
    from kiosk.face.enrol import fit_photo, load_image
    from kiosk.face.matcher import FaceMatcher, Match
    from kiosk.face.templates import FaceKeyError

    _quiet()
    config, store, templates = _open(ctx)
    try:
        stored = templates.all()
    except FaceKeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    # As the worker sees it: this detector's boxes, this detector's templates only.
    detector = make_detector(config.face.detector, enrol=True)
    other = sum(t.detector != detector.name for t in stored)
    if other:
        typer.echo(f"{other} templates of another detector than {detector.name} left out")
    stored = [t for t in stored if t.detector == detector.name]
    matcher = FaceMatcher(config.face.threshold, config.face.min_margin)
    matcher.set_roster((t.elder_id, t.encoding) for t in stored)
    typer.echo(
        f"{matcher.template_count} templates of {matcher.elder_count} elders; "
        f"threshold {config.face.threshold}, min margin {config.face.min_margin}"
    )
    for photo in photos:
        image = load_image(photo)
        if image is None:
            typer.echo(f"{photo}: cannot read")
            continue
        image = fit_photo(image)
        boxes = detector.detect(image)
        if not boxes:
            typer.echo(f"{photo}: no face")
        for i, box in enumerate(boxes):
            encoding = encode_face(image, box)
            decision = matcher.match(encoding)
            who = decision.elder_id if isinstance(decision, Match) else "none"
            kind = type(decision).__name__.lower()
            typer.echo(
                f"{photo} face {i + 1} ({box.size} px): {who} [{kind}] "
                f"distance {decision.distance:.3f} margin {decision.margin:.3f}"
            )
            per_elder: dict[str, float] = {}
            for t in stored:
                d = float(np.linalg.norm(t.encoding - encoding))
                per_elder[t.elder_id] = min(d, per_elder.get(t.elder_id, d))
            for elder, d in sorted(per_elder.items(), key=lambda kv: kv[1])[:NEAREST_SHOWN]:
                typer.echo(f"    {elder}: {d:.3f}")


@face_app.command("unenroll")
def unenroll(
    ctx: typer.Context,
    elder_id: Annotated[str, typer.Argument(help="the elder whose consent was withdrawn")],
) -> None:
    """Consent withdrawn: delete every face template of the elder."""
    _config, store, templates = _open(ctx)
    try:
        deleted = templates.delete_elder(elder_id)
    finally:
        store.close()
    typer.echo(f"deleted {deleted} face template(s) of {elder_id}")


# `kiosk face templates|revert`: the templates learned at check-in (templates that follow
# ageing), listed and undone by the technician.
templates_app = typer.Typer(help="Face templates of one elder: list, revert learned ones.")
face_app.add_typer(templates_app, name="face")


def _parse_when(text: str, tz: dt.tzinfo) -> dt.datetime:
    """An ISO date or date-time; naive values are in the site's zone."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date-time like 2026-12-01 or 2026-12-01T08:30"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


@templates_app.command("templates")
def list_templates(
    ctx: typer.Context,
    elder: Annotated[str, typer.Option("--elder", help="the elder's roster id")],
) -> None:
    """Every template of the elder, enrolled and learned, active and retired (no face data)."""
    _config, store, templates = _open(ctx)
    try:
        rows = templates.history(elder)
    finally:
        store.close()
    if not rows:
        typer.echo(f"{elder}: no face templates")
        return
    for r in rows:
        state = "active" if r.active else "retired"
        typer.echo(
            f"{r.id:>6}  {r.enrolled_at.isoformat(timespec='seconds')}  {r.source:<6}  "
            f"{state:<7}  {r.consent_ref}"
        )


@templates_app.command("revert")
def revert_templates(
    ctx: typer.Context,
    elder: Annotated[str, typer.Option("--elder", help="the elder's roster id")],
    to: Annotated[
        str, typer.Option("--to", help="undo learned-template changes after this time (ISO)")
    ],
) -> None:
    """Undo the templates learned at check-in after --to: learned ones deleted, the ones they
    retired restored; recorded in the audit log."""
    config, store, templates = _open(ctx)
    tz = config.site.tz
    try:
        when = _parse_when(to, tz)
        result = templates.revert(elder, when, dt.datetime.now(tz), who="cli")
    finally:
        store.close()
    typer.echo(
        f"{elder}: removed {len(result.removed)} learned template(s) {result.removed}, "
        f"restored {len(result.restored)} {result.restored}"
    )
