"""The error hierarchy: every failure a user can cause is one of these, with a one-line message."""

from __future__ import annotations


def first_line(e: BaseException, limit: int = 300) -> str:
    """A backend exception as one short line for our one-line errors."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


class VitdeployError(Exception):
    """Base class: the CLI prints ``str(err)`` on one line and exits 1."""


class UnknownModelError(VitdeployError):
    """A model name that is not in the registry."""


class CheckpointError(VitdeployError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks for anything beyond containers and numpy arrays."""


class ArtifactError(VitdeployError):
    """A missing, incomplete or corrupt artifact directory."""


class ReferenceFileError(VitdeployError):
    """A reference file (.npz) that cannot be read, is not ours, or is inconsistent."""


class OutputExistsError(VitdeployError):
    """An output path that exists and would be overwritten without --force."""


class ImageError(VitdeployError):
    """A file that is not a decodable image."""


class RuntimeUnavailableError(VitdeployError):
    """An unknown runtime, or one whose package is not installed."""


class ExportError(VitdeployError):
    """Writing a model failed: the Paddle export, or a conversion tool."""


class OptionError(VitdeployError):
    """An option that does not apply to the chosen target, or a value out of range."""


class PrecisionError(OptionError):
    """A compute precision a runtime cannot be asked for."""


class SettingError(OptionError):
    """A runtime session setting it does not have, or a value it does not take."""


class QuantizeError(ExportError):
    """A quantization recipe failed (the tool's own error, in one line)."""


class CheckNotMet(VitdeployError):
    """A measured check the user asked for was not met (an accuracy budget): exit code 2."""

    exit_code = 2


class Interrupted(VitdeployError):
    """Ctrl-C, where something was kept to resume from (the message says what and how)."""

    exit_code = 130
