"""PaddleClas deploy configs (our ``inference.yml``, PaddleClas's ``inference_cls.yaml``): written
and read (validated) here only.

Layout: ``Global`` / ``PreProcess.transform_ops`` [ResizeImage, CropImage, NormalizeImage, ToCHWImage]
/ ``PostProcess``. Every problem in a file is collected and raised as one ArtifactError line, so a
careless or hostile file never reaches preprocessing (NaN scores, failing crops) and never surfaces
as an internal error or a multi-line YAML dump.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ..errors import ArtifactError
from ..models.config import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig
from ..preprocess import _CV2_INTERP, _PIL_INTERP

INFERENCE_YML = "inference.yml"
# PaddleClas's deploy config (deploy/configs/inference_cls.yaml), read when there is no inference.yml.
PADDLECLAS_DEPLOY_YAMLS = ("inference_cls.yaml", "inference_cls.yml")

MAX_SIDE = 10_000  # pixels; larger is a typo (or a way to make every image allocate gigabytes)
MAX_CLASSES = 1_000_000
MAX_BYTES = 1 << 20  # a deploy config is a few hundred bytes; refuse to parse a huge file
INTERPOLATIONS = {"cv2": sorted(_CV2_INTERP), "pil": sorted(_PIL_INTERP)}
# The keyword arguments PaddleClas's deploy transforms accept (anything else is a TypeError there).
OP_KEYS = {
    "ResizeImage": ("resize_short", "size", "interpolation", "backend", "return_numpy"),
    "CropImage": ("size",),
    "NormalizeImage": ("scale", "mean", "std", "order", "channel_num", "output_fp16"),
}
IGNORED_OPS = ("DecodeImage", "ToCHWImage")  # we always decode to RGB HWC and emit CHW


@dataclass(frozen=True)
class DeployConfig:
    """What a deploy config says, after validation."""

    path: Path
    preprocess: PreprocessConfig
    num_classes: int | None = None
    softmax: bool = False
    input_shape: tuple[int, int, int] | None = None
    model_name: str | None = None
    class_id_map_file: str | None = None  # relative to ``path.parent``, checked to stay inside it


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # YAML's true is an int in Python


class _Checker:
    """Collects problems instead of stopping at the first, so one run lists them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def mapping(self, value: Any, field: str, required: bool = False) -> Mapping | None:
        if value is None and not required:
            return {}
        if isinstance(value, Mapping):
            return value
        self.add(f"{field} is missing" if value is None else
                 f"{field} is {_show(value)} (must be a mapping)")
        return None

    def positive_int(self, value: Any, field: str, maximum: int = MAX_SIDE) -> int | None:
        if value is None:
            self.add(f"{field} is missing")
        elif not _is_int(value) or value <= 0:
            self.add(f"{field} is {_show(value)} (must be a positive integer)")
        elif value > maximum:
            self.add(f"{field} is {value} (must be at most {maximum})")
        else:
            return value
        return None

    def number(self, value: Any, field: str, positive: bool = False) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(f"{field} is {_show(value)} (must be a number)")
        elif not math.isfinite(value):
            self.add(f"{field} is {value} (must be a finite number)")
        elif positive and value <= 0:
            self.add(f"{field} is {value} (must be > 0)")
        else:
            return float(value)
        return None

    def triple(self, value: Any, field: str, default: tuple[float, float, float],
               positive: bool = False) -> tuple[float, float, float]:
        if value is None:
            return default  # PaddleClas's NormalizeImage defaults to the ImageNet statistics
        if not isinstance(value, list | tuple) or len(value) != 3:
            self.add(f"{field} is {_show(value)} (must be 3 numbers, one per RGB channel)")
            return default
        got = [self.number(v, f"{field}[{i}]", positive) for i, v in enumerate(value)]
        return tuple(got) if None not in got else default  # type: ignore[return-value]

    def scale(self, value: Any) -> float:
        field = "NormalizeImage.scale"
        if value is None:
            return 1.0 / 255.0
        if isinstance(value, str):  # PaddleClas writes "1.0/255.0"
            num, slash, den = value.partition("/")
            try:
                parsed = float(num) / float(den) if slash else float(num)
            except ZeroDivisionError:
                self.add(f"{field} is {_show(value)} (division by zero)")
                return 1.0
            except ValueError:
                self.add(f"{field} is {_show(value)} (must be a number or a fraction like '1.0/255.0')")
                return 1.0
            value = parsed
        return self.number(value, field, positive=True) or 1.0

    def choice(self, value: Any, field: str, choices: list[str], default: str) -> str:
        if value is None:
            return default
        if not isinstance(value, str) or value.lower() not in choices:
            self.add(f"{field} is {_show(value)} (supported: {', '.join(choices)})")
            return default
        return value


def _transform_ops(c: _Checker, pre: Mapping) -> dict[str, tuple[int, Mapping]]:
    """``{op name: (position, args)}`` for the ops we apply; unknown and malformed ops are problems."""
    ops_list = pre.get("transform_ops")
    if not isinstance(ops_list, list):
        c.add("PreProcess.transform_ops is missing" if ops_list is None else
              f"PreProcess.transform_ops is {_show(ops_list)} (must be a list of one-key mappings)")
        return {}
    ops: dict[str, tuple[int, Mapping]] = {}
    seen: set[str] = set()
    for i, op in enumerate(ops_list):
        where = f"PreProcess.transform_ops[{i}]"
        if not isinstance(op, Mapping) or len(op) != 1 or not isinstance(next(iter(op)), str):
            c.add(f"{where} is {_show(op)} (must be a one-key mapping like {{CropImage: {{size: 224}}}})")
            continue
        name, args = next(iter(op.items()))
        if name in IGNORED_OPS:
            continue
        if name not in OP_KEYS:
            c.add(f"{where} is the unknown transform {name!r} (supported: "
                  f"{', '.join([*OP_KEYS, *IGNORED_OPS])})")
            continue
        if name in seen:
            c.add(f"{where}: {name} appears twice")
            continue
        seen.add(name)
        checked = c.mapping(args, name)
        if checked is None:
            continue
        unknown = [str(k) for k in checked if k not in OP_KEYS[name]]
        if unknown:
            c.add(f"{name} has unknown argument(s) {', '.join(unknown)} "
                  f"(PaddleClas accepts {', '.join(OP_KEYS[name])})")
        ops[name] = (i, checked)
    for name in OP_KEYS:
        if name not in seen:
            c.add(f"PreProcess.transform_ops has no {name}")
    return ops


def _crop_size(c: _Checker, value: Any) -> int | None:
    if isinstance(value, list | tuple):  # PaddleClas also takes [w, h]; our crop is square
        if len(value) != 2 or value[0] != value[1]:
            c.add(f"CropImage.size is {_show(value)} (only square crops are supported: one integer)")
            return None
        value = value[0]
    return c.positive_int(value, "CropImage.size")


def _preprocess(c: _Checker, pre: Mapping) -> tuple[PreprocessConfig | None, int | None]:
    ops = _transform_ops(c, pre)
    resize = ops.get("ResizeImage", (0, {}))[1]
    crop_args = ops.get("CropImage", (0, {}))[1]
    norm = ops.get("NormalizeImage", (0, {}))[1]
    if "ResizeImage" in ops and "CropImage" in ops and ops["CropImage"][0] < ops["ResizeImage"][0]:
        c.add("CropImage comes before ResizeImage (PaddleClas resizes the short side, then crops)")

    short = crop = None
    if "ResizeImage" in ops:
        if resize.get("resize_short") is None and resize.get("size") is not None:
            c.add("ResizeImage.size is not supported (use resize_short: resize the short side)")
        else:
            short = c.positive_int(resize.get("resize_short"), "ResizeImage.resize_short")
    if "CropImage" in ops:
        crop = _crop_size(c, crop_args.get("size"))
    if short is not None and crop is not None and crop > short:
        c.add(f"CropImage.size {crop} is larger than ResizeImage.resize_short {short} "
              "(every image would be too small to crop)")
    known = len(c.problems)
    backend = c.choice(resize.get("backend"), "ResizeImage.backend", sorted(INTERPOLATIONS), "cv2")
    interpolation = "bilinear"  # PaddleClas's default: OpenCV's INTER_LINEAR
    if len(c.problems) == known:  # which interpolations exist depends on the backend
        interpolation = c.choice(resize.get("interpolation"), "ResizeImage.interpolation",
                                 INTERPOLATIONS[backend.lower()], interpolation)

    scale = c.scale(norm.get("scale"))
    mean = c.triple(norm.get("mean"), "NormalizeImage.mean", IMAGENET_MEAN)
    std = c.triple(norm.get("std"), "NormalizeImage.std", IMAGENET_STD, positive=True)
    order = norm.get("order")
    if order not in (None, "") and str(order).lower() != "hwc":
        c.add(f"NormalizeImage.order is {_show(order)} (must be 'hwc' or '': it runs before ToCHWImage)")
    if norm.get("channel_num", 3) != 3:  # PaddleClas pads a 4th zero channel for 4
        c.add(f"NormalizeImage.channel_num is {_show(norm['channel_num'])} (must be 3)")
    if norm.get("output_fp16"):
        c.add("NormalizeImage.output_fp16 must be false (the runtimes take float32 input)")
    if short is None or crop is None:
        return None, crop
    return PreprocessConfig(resize_short=short, crop_size=crop, interpolation=interpolation,
                            backend=backend, mean=mean, std=std, scale=scale), crop


def _input_shape(c: _Checker, value: Any) -> tuple[int, int, int] | None:
    if value is None:
        return None
    if (not isinstance(value, list | tuple) or len(value) != 3 or value[0] != 3
            or not all(_is_int(v) and 0 < v <= MAX_SIDE for v in value)):
        c.add(f"Global.input_shape is {_show(value)} (must be [3, H, W])")
        return None
    return tuple(value)  # type: ignore[return-value]


def _topk_section(post: Mapping) -> Mapping:
    indicator = post.get("main_indicator")
    section = post.get(indicator if isinstance(indicator, str) else "Topk")
    return section if isinstance(section, Mapping) else {}


def _class_id_map_file(c: _Checker, post: Mapping, directory: Path,
                       paddleclas_deploy: bool) -> str | None:
    """Ours sits in PostProcess, PaddleClas's in PostProcess.Topk; it must stay inside the directory.

    PaddleClas's own config points into PaddleClas's source tree (``../ppcls/utils/...``): there
    an outside path is dropped (class ids serve as labels), not an error.
    """
    value = post.get("class_id_map_file")
    if value is None:
        value = _topk_section(post).get("class_id_map_file")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        c.add(f"PostProcess.class_id_map_file is {_show(value)} (must be a file name)")
        return None
    rel, root = Path(value), directory.resolve()
    try:  # resolve() follows symlinks too, so a link inside pointing out is refused as well
        inside = not rel.is_absolute() and (root / rel).resolve().is_relative_to(root)
    except (OSError, ValueError):  # e.g. an embedded NUL byte
        inside = False
    if inside:
        return value
    if not paddleclas_deploy:
        c.add(f"PostProcess.class_id_map_file {_show(value)} points outside {directory} "
              "(must be a file inside the artifact directory)")
    return None


def _global(c: _Checker, glob: Mapping) -> tuple[int | None, bool, str | None]:
    num_classes = glob.get("num_classes")
    if num_classes is not None:
        num_classes = c.positive_int(num_classes, "Global.num_classes", maximum=MAX_CLASSES)
    softmax = glob.get("softmax", False)
    if not isinstance(softmax, bool):
        c.add(f"Global.softmax is {_show(softmax)} (must be true or false)")
        softmax = False
    name = glob.get("model_name")
    if name is not None and not isinstance(name, str):
        c.add(f"Global.model_name is {_show(name)} (must be a string)")
        name = None
    return num_classes, softmax, name


def _raise(path: Path, problems: list[str]) -> NoReturn:
    if len(problems) == 1:
        raise ArtifactError(f"{path}: {problems[0]}")
    raise ArtifactError(f"{path}: {len(problems)} problems: {'; '.join(problems)}")


def parse_deploy_config(data: Any, path: str | Path, *,
                        expected: Mapping[str, tuple[int, int]] | None = None,
                        paddleclas_deploy: bool = False) -> DeployConfig:
    """Validate an already-loaded config. ``expected`` maps a description of where an input size
    comes from (e.g. "manifest.json input.shape is [None, 3, 32, 32]") to its (H, W); the crop
    must equal each. ``paddleclas_deploy``: PaddleClas's own inference_cls.yaml (see above)."""
    path = Path(path)
    if data is None:
        raise ArtifactError(f"{path} is empty (expected PaddleClas's Global / PreProcess / PostProcess)")
    if not isinstance(data, Mapping):
        raise ArtifactError(f"{path}: top level is {_show(data)} "
                            "(expected a mapping with Global / PreProcess / PostProcess)")
    c = _Checker()
    glob = c.mapping(data.get("Global"), "Global") or {}
    pre_section = c.mapping(data.get("PreProcess"), "PreProcess", required=True)
    post = c.mapping(data.get("PostProcess"), "PostProcess") or {}
    pre, crop = _preprocess(c, pre_section) if pre_section is not None else (None, None)
    num_classes, softmax, name = _global(c, glob)
    shape = _input_shape(c, glob.get("input_shape"))
    sizes = dict(expected or {})
    if shape is not None:
        sizes[f"Global.input_shape is {list(shape)}"] = (shape[1], shape[2])
    if crop is not None:
        for desc, hw in sizes.items():
            if hw != (crop, crop):
                c.add(f"CropImage.size is {crop} but {desc}")
    topk = post.get("topk", _topk_section(post).get("topk"))
    if topk is not None:
        c.positive_int(topk, "PostProcess.topk", maximum=MAX_CLASSES)
    labels = _class_id_map_file(c, post, path.parent, paddleclas_deploy)
    if c.problems or pre is None:
        _raise(path, c.problems or ["PreProcess is incomplete"])
    return DeployConfig(path, pre, num_classes, softmax, shape, name, labels)


def _flatten_yaml_error(e: yaml.YAMLError) -> str:
    """PyYAML's messages span 3-5 lines (context, mark, snippet, caret); keep line + problem."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or type(e).__name__
        if e.problem and e.context:
            problem = f"{problem} ({e.context})"
        text = " ".join(str(problem).split())
        return f"line {mark.line + 1}: {text}" if mark is not None else text
    return " ".join(str(e).split())[:200] or type(e).__name__


def load_yaml(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file (no Python tags are ever constructed), every failure one line."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ArtifactError(f"{path} is {size} bytes; a deploy config is a few hundred bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ArtifactError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ArtifactError(f"{path} is not UTF-8 text (expected a YAML deploy config)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ArtifactError(f"{path} is not valid YAML ({_flatten_yaml_error(e)})") from None
    except RecursionError:
        raise ArtifactError(f"{path} is not valid YAML (nested too deeply)") from None


def read_deploy_config(path: str | Path, *, expected: Mapping[str, tuple[int, int]] | None = None,
                       paddleclas_deploy: bool = False) -> DeployConfig:
    """Load and validate a deploy config file; see :func:`parse_deploy_config`."""
    return parse_deploy_config(load_yaml(path), path, expected=expected,
                               paddleclas_deploy=paddleclas_deploy)


def inference_yml(model: str, pre: PreprocessConfig, num_classes: int, softmax: bool) -> dict:
    """PaddleClas's deploy config layout, so PaddleClas/PaddleX tooling can read it too."""
    return {
        "Global": {"model_name": model, "input_shape": [3, pre.crop_size, pre.crop_size],
                   "num_classes": num_classes, "softmax": softmax},
        "PreProcess": {"transform_ops": [
            {"ResizeImage": {"resize_short": pre.resize_short, "interpolation": pre.interpolation,
                             "backend": pre.backend}},
            {"CropImage": {"size": pre.crop_size}},
            {"NormalizeImage": {"scale": pre.scale, "mean": list(pre.mean), "std": list(pre.std),
                                "order": "hwc"}},
            {"ToCHWImage": None},
        ]},
        "PostProcess": {"name": "Topk", "topk": 5, "class_id_map_file": "labels.txt"},
    }


def write_inference_yml(path: Path, cfg: dict) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
