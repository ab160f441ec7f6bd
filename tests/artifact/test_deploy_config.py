"""The deploy config (inference.yml / PaddleClas's inference_cls.yaml) is validated at the boundary:
every bad file is one ArtifactError line naming the file and each bad field."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, assert_one_line_error, run_cli

from vitdeploy.artifact import inference_yml, parse_deploy_config, read_artifact_info
from vitdeploy.errors import ArtifactError, UnknownModelError
from vitdeploy.models import PreprocessConfig, get_config

SAMPLE_MODEL = "DeiT_digits_patch8_32"
GOOD_PRE = PreprocessConfig(resize_short=36, crop_size=32, interpolation="bicubic", backend="pil")
GOOD = inference_yml("Tiny", GOOD_PRE, 10, False)


def _op(cfg: dict, name: str) -> dict:
    return next(op for op in cfg["PreProcess"]["transform_ops"] if name in op)[name]


def _set(name: str, key: str, value) -> Callable[[dict], None]:
    return lambda cfg: _op(cfg, name).__setitem__(key, value)


def _norm(key: str, index: int, value) -> Callable[[dict], None]:
    return lambda cfg: _op(cfg, "NormalizeImage")[key].__setitem__(index, value)


def _glob(key: str, value) -> Callable[[dict], None]:
    return lambda cfg: cfg["Global"].__setitem__(key, value)


def _ops(ops) -> Callable[[dict], None]:
    return lambda cfg: cfg["PreProcess"].__setitem__("transform_ops", ops)


def _both(*fns: Callable[[dict], None]) -> Callable[[dict], None]:
    return lambda cfg: [f(cfg) for f in fns] and None


_OPS = copy.deepcopy(GOOD["PreProcess"]["transform_ops"])

# id -> (mutation of GOOD, raw file text, or raw bytes; needles the one-line message must hold)
BAD = {
    "std_zero": (_norm("std", 1, 0), ["NormalizeImage.std[1] is 0", "must be > 0"]),
    "std_negative": (_norm("std", 0, -0.2), ["NormalizeImage.std[0] is -0.2"]),
    "std_inf": (_norm("std", 2, math.inf), ["NormalizeImage.std[2]", "finite"]),
    "mean_nan": (_norm("mean", 0, math.nan), ["NormalizeImage.mean[0] is nan", "finite"]),
    "mean_bool": (_norm("mean", 0, True), ["NormalizeImage.mean[0]", "number"]),
    "mean_two_numbers": (_set("NormalizeImage", "mean", [0.5, 0.5]), ["NormalizeImage.mean", "3 numbers"]),
    "std_scalar": (_set("NormalizeImage", "std", 0.5), ["NormalizeImage.std", "3 numbers"]),
    "scale_div_zero": (_set("NormalizeImage", "scale", "1.0/0"),
                       ["NormalizeImage.scale", "division by zero"]),
    "scale_garbage": (_set("NormalizeImage", "scale", "one/255"), ["NormalizeImage.scale", "fraction"]),
    "scale_nan": (_set("NormalizeImage", "scale", math.nan), ["NormalizeImage.scale", "finite"]),
    "scale_zero": (_set("NormalizeImage", "scale", 0), ["NormalizeImage.scale is 0", "> 0"]),
    "scale_negative": (_set("NormalizeImage", "scale", "-1/255"), ["NormalizeImage.scale", "> 0"]),
    "order_chw": (_set("NormalizeImage", "order", "chw"), ["NormalizeImage.order"]),
    "resize_negative": (_set("ResizeImage", "resize_short", -5),
                        ["ResizeImage.resize_short is -5", "positive integer"]),
    "resize_zero": (_set("ResizeImage", "resize_short", 0), ["ResizeImage.resize_short is 0"]),
    "resize_bool": (_set("ResizeImage", "resize_short", True), ["ResizeImage.resize_short is True"]),
    "resize_float": (_set("ResizeImage", "resize_short", 36.5), ["ResizeImage.resize_short is 36.5"]),
    "resize_absurd": (_set("ResizeImage", "resize_short", 10**9), ["ResizeImage.resize_short", "at most"]),
    "resize_missing": (lambda cfg: _op(cfg, "ResizeImage").pop("resize_short"),
                       ["ResizeImage.resize_short is missing"]),
    "resize_fixed_size": (lambda cfg: _op(cfg, "ResizeImage").update(resize_short=None, size=[32, 32]),
                          ["ResizeImage.size", "resize_short"]),
    "crop_zero": (_set("CropImage", "size", 0), ["CropImage.size is 0", "positive integer"]),
    "crop_string": (_set("CropImage", "size", "32"), ["CropImage.size is '32'"]),
    "crop_unequal": (_set("CropImage", "size", [32, 16]), ["CropImage.size", "square"]),
    "crop_absurd": (_both(_set("ResizeImage", "resize_short", 5000), _set("CropImage", "size", 10**6)),
                    ["CropImage.size", "at most 10000"]),
    "crop_above_resize": (_set("ResizeImage", "resize_short", 30),
                          ["CropImage.size 32 is larger than ResizeImage.resize_short 30"]),
    "crop_vs_input_shape": (_glob("input_shape", [3, 64, 64]),
                            ["CropImage.size is 32 but Global.input_shape is [3, 64, 64]"]),
    "input_shape_malformed": (_glob("input_shape", [3, 32]), ["Global.input_shape", "[3, H, W]"]),
    "interpolation_unknown": (_set("ResizeImage", "interpolation", "cubic"),
                              ["ResizeImage.interpolation is 'cubic'", "bicubic"]),
    "interpolation_wrong_backend": (_both(_set("ResizeImage", "backend", "cv2"),
                                         _set("ResizeImage", "interpolation", "hamming")),
                                    ["ResizeImage.interpolation is 'hamming'"]),
    "backend_unknown": (_set("ResizeImage", "backend", "skimage"), ["ResizeImage.backend", "cv2, pil"]),
    "top_level_list": ("- PreProcess\n- PostProcess\n", ["top level", "mapping"]),
    "top_level_scalar": ("42\n", ["top level is 42"]),
    "empty_file": ("", ["is empty"]),
    "comment_only": ("# nothing here\n", ["is empty"]),
    "not_utf8": (b"\xff\xfe\x00P", ["UTF-8"]),
    "preprocess_list": (lambda cfg: cfg.__setitem__("PreProcess", [1, 2]),
                        ["PreProcess is [1, 2]", "mapping"]),
    "preprocess_missing": (lambda cfg: cfg.pop("PreProcess"), ["PreProcess is missing"]),
    "transform_ops_mapping": (lambda cfg: cfg["PreProcess"].__setitem__("transform_ops", {"CropImage": 1}),
                              ["PreProcess.transform_ops", "list"]),
    "op_two_keys": (_ops([_OPS[0], {"CropImage": {"size": 32}, "ToCHWImage": None}, _OPS[2]]),
                    ["transform_ops[1]", "one-key mapping"]),
    "op_string": (_ops([_OPS[0], "CropImage", _OPS[2]]), ["transform_ops[1] is 'CropImage'"]),
    "op_unknown": (_ops([*_OPS, {"RandFlipImage": {"flip_code": 1}}]),
                   ["'RandFlipImage'", "ResizeImage, CropImage, NormalizeImage"]),
    "op_args_not_mapping": (_ops([_OPS[0], {"CropImage": 32}, _OPS[2]]), ["CropImage is 32", "mapping"]),
    "op_unknown_argument": (_set("CropImage", "sise", 32), ["CropImage has unknown argument(s) sise"]),
    "op_duplicate": (_ops([*_OPS, {"CropImage": {"size": 16}}]), ["CropImage appears twice"]),
    "op_missing": (_ops([_OPS[0], _OPS[2]]), ["transform_ops has no CropImage"]),
    "crop_before_resize": (_ops([_OPS[1], _OPS[0], _OPS[2]]), ["CropImage comes before ResizeImage"]),
    "python_tag": ("Global: {num_classes: 10}\nPreProcess:\n  transform_ops:\n"
                   "    - !!python/object/apply:os.system ['touch /tmp/pwned']\n",
                   ["not valid YAML (line 4", "could not determine a constructor",
                    "python/object/apply:os.system"]),
    "yaml_syntax": ("PreProcess:\n  transform_ops:\n   - a\n  - b: [\n", ["not valid YAML (line 4"]),
    "num_classes_zero": (_glob("num_classes", 0), ["Global.num_classes is 0", "positive integer"]),
    "num_classes_string": (_glob("num_classes", "10"), ["Global.num_classes is '10'"]),
    "num_classes_bool": (_glob("num_classes", True), ["Global.num_classes is True"]),
    "softmax_not_bool": (_glob("softmax", "yes"), ["Global.softmax is 'yes'", "true or false"]),
    "labels_escape": (lambda cfg: cfg["PostProcess"].__setitem__("class_id_map_file", "../../etc/passwd"),
                      ["class_id_map_file '../../etc/passwd' points outside"]),
    "labels_absolute": (lambda cfg: cfg["PostProcess"].__setitem__("class_id_map_file", "/etc/passwd"),
                        ["class_id_map_file '/etc/passwd' points outside"]),
    "labels_not_string": (lambda cfg: cfg["PostProcess"].__setitem__("class_id_map_file", [1]),
                          ["PostProcess.class_id_map_file is [1]"]),
    "two_problems": (_both(_norm("std", 1, 0), _set("ResizeImage", "resize_short", -5)),
                     ["2 problems", "NormalizeImage.std[1] is 0 (must be > 0)",
                      "ResizeImage.resize_short is -5 (must be a positive integer)"]),
}


def _write(d: Path, content, name: str = "inference.yml") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    path = d / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        cfg = copy.deepcopy(GOOD)
        if content is not None:
            content(cfg)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _refused(d: Path, *needles: str, model: str | None = None, file: str = "inference.yml") -> str:
    with pytest.raises(ArtifactError) as e:
        read_artifact_info(d, model=model)
    msg = str(e.value)
    assert "\n" not in msg and file in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_line(tmp_path, case):
    content, needles = BAD[case]
    _write(tmp_path, content)
    _refused(tmp_path, *needles)


def test_good_config_reads(tmp_path):
    _write(tmp_path, None)
    (tmp_path / "labels.txt").write_text("".join(f"c{i}\n" for i in range(10)))
    info = read_artifact_info(tmp_path)
    assert info.preprocess == GOOD_PRE
    assert (info.num_classes, info.softmax, len(info.labels)) == (10, False, 10)
    assert info.config_file == tmp_path / "inference.yml"


def test_paddleclas_scale_string_still_accepted(tmp_path):
    _write(tmp_path, _set("NormalizeImage", "scale", "1.0/255.0"))
    assert read_artifact_info(tmp_path).preprocess.scale == pytest.approx(1 / 255)


def test_label_count_mismatch(tmp_path):
    _write(tmp_path, None)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    _refused(tmp_path, "labels.txt has 3 labels", "Global.num_classes is 10")


def test_labels_symlink_out_of_directory(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("x\n")
    d = tmp_path / "art"
    _write(d, lambda cfg: cfg["PostProcess"].__setitem__("class_id_map_file", "link.txt"))
    (d / "link.txt").symlink_to(outside)
    _refused(d, "class_id_map_file 'link.txt' points outside")


def test_crop_vs_manifest_input_shape(tmp_path):
    _write(tmp_path, None)
    (tmp_path / "manifest.json").write_text(json.dumps({"input": {"shape": [None, 3, 64, 64]}}))
    _refused(tmp_path, "CropImage.size is 32 but manifest.json input.shape is [None, 3, 64, 64]")


def test_parse_rejects_non_mapping_directly():
    with pytest.raises(ArtifactError, match="top level"):
        parse_deploy_config(["PreProcess"], "x.yml")


# -- --model: a bare PaddleClas export, and a yaml checked against the model's input size --

def test_model_fallback_without_yaml(tmp_path):
    (tmp_path / "labels.txt").write_text("".join(f"{i}\n" for i in range(10)))
    info = read_artifact_info(tmp_path, model=SAMPLE_MODEL)
    assert info.preprocess == get_config(SAMPLE_MODEL).preprocess
    assert info.labels == [str(i) for i in range(10)] and info.config_file is None


def test_no_yaml_no_model_says_pass_model(tmp_path):
    _refused(tmp_path, "has no inference.yml", "--model NAME", file=str(tmp_path))


def test_model_fallback_unknown_model(tmp_path):
    with pytest.raises(UnknownModelError):
        read_artifact_info(tmp_path, model="NoSuchNet")


def test_model_fallback_checks_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"input": {"shape": [None, 3, 224, 224]}}))
    _refused(tmp_path, f"model {SAMPLE_MODEL} takes 32x32", "[None, 3, 224, 224]", model=SAMPLE_MODEL,
             file=str(tmp_path))


def test_model_and_yaml_crop_must_match(tmp_path):
    _write(tmp_path, None)
    assert read_artifact_info(tmp_path, model=SAMPLE_MODEL).preprocess == GOOD_PRE  # 32 == 32
    _refused(tmp_path, "CropImage.size is 32 but model DeiT_tiny_patch16_224 takes 224x224",
             model="DeiT_tiny_patch16_224")


# -- PaddleClas's own deploy config, from the paddleclas wheel --

@pytest.fixture(scope="module")
def paddleclas_inference_cls() -> str:
    from oracle import _wheel

    try:
        wheel = _wheel()
    except (subprocess.CalledProcessError, OSError, IndexError) as e:
        pytest.skip(f"cannot download the paddleclas wheel ({type(e).__name__}); offline?")
    with zipfile.ZipFile(wheel) as zf:
        return zf.read("paddleclas/deploy/configs/inference_cls.yaml").decode()


def test_reads_paddleclas_inference_cls_yaml(tmp_path, paddleclas_inference_cls):
    _write(tmp_path, paddleclas_inference_cls, "inference_cls.yaml")
    info = read_artifact_info(tmp_path)
    pre = info.preprocess
    assert (pre.resize_short, pre.crop_size, pre.interpolation, pre.backend) == (256, 224, "bilinear", "cv2")
    assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    assert pre.scale == pytest.approx(1 / 255, rel=1e-6)
    # class_id_map_file points into PaddleClas's tree (../ppcls/utils/...): class ids serve as labels
    assert info.labels == [] and info.config_file == tmp_path / "inference_cls.yaml"
    assert read_artifact_info(tmp_path, model="DeiT_tiny_patch16_224").preprocess == pre
    _refused(tmp_path, f"CropImage.size is 224 but model {SAMPLE_MODEL} takes 32x32",
             model=SAMPLE_MODEL, file="inference_cls.yaml")


def test_paddleclas_yaml_is_validated_too(tmp_path, paddleclas_inference_cls):
    _write(tmp_path, paddleclas_inference_cls.replace("std: [0.229, 0.224, 0.225]", "std: [0.229, 0, 0.225]"),
           "inference_cls.yaml")
    _refused(tmp_path, "NormalizeImage.std[1] is 0", file="inference_cls.yaml")


# -- through the real CLI, on a copy of the exported sample --

def _copy_export(sample_export: Path, dest: Path) -> Path:
    shutil.copytree(sample_export, dest)
    (dest / "manifest.json").unlink()  # its sha256 of inference.yml would (rightly) refuse the edit
    return dest


def _image(sample: dict) -> Path:
    return sorted((ROOT / sample["test_dir"] / "0").glob("*.png"))[0]


def test_cli_predict_std_zero(sample_export, sample, tmp_path):
    d = _copy_export(sample_export, tmp_path / "art")
    cfg = yaml.safe_load((d / "inference.yml").read_text())
    _op(cfg, "NormalizeImage")["std"][1] = 0
    (d / "inference.yml").write_text(yaml.safe_dump(cfg))
    assert_one_line_error(run_cli("predict", d, _image(sample)), "inference.yml",
                          "NormalizeImage.std[1] is 0")


def test_cli_predict_python_tag(sample_export, sample, tmp_path):
    d = _copy_export(sample_export, tmp_path / "art")
    (d / "inference.yml").write_text(BAD["python_tag"][0])
    assert_one_line_error(run_cli("predict", d, _image(sample)), "inference.yml is not valid YAML (line 4",
                          "constructor")


def test_cli_predict_with_paddleclas_style_yaml(sample_export, sample, tmp_path):
    """inference.yml replaced by a PaddleClas-layout inference_cls.yaml: predictions still work."""
    d = _copy_export(sample_export, tmp_path / "art")
    pre = get_config(SAMPLE_MODEL).preprocess
    (d / "inference.yml").unlink()
    (d / "inference_cls.yaml").write_text(yaml.safe_dump({
        "Global": {"batch_size": 1, "use_gpu": False},
        "PreProcess": {"transform_ops": [
            {"ResizeImage": {"resize_short": pre.resize_short, "interpolation": pre.interpolation,
                             "backend": pre.backend}},
            {"CropImage": {"size": pre.crop_size}},
            {"NormalizeImage": {"scale": "1.0/255.0", "mean": list(pre.mean), "std": list(pre.std),
                                "order": ""}},
            {"ToCHWImage": None}]},
        "PostProcess": {"main_indicator": "Topk",
                        "Topk": {"topk": 5, "class_id_map_file": "../ppcls/utils/imagenet1k_label_list.txt"}},
    }))
    r = run_cli("predict", d, _image(sample), "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)[0]["top"][0]["label"] == "0"  # labels.txt beside the model


@pytest.mark.slow
def test_convert_reads_paddleclas_yaml_without_model(sample_export, sample, tmp_path):
    """convert accepts the same PaddleClas directory: its inference_cls.yaml becomes the artifact's
    inference.yml, and parity against the PaddleClas directory itself passes."""
    from vitdeploy.artifact import read_artifact_info

    test_cli_predict_with_paddleclas_style_yaml(sample_export, sample, tmp_path)
    d = tmp_path / "art"
    r = run_cli("convert", d, "--to", "onnx", "--out", tmp_path / "onnx")
    assert r.code == 0, r.stderr
    assert read_artifact_info(tmp_path / "onnx").preprocess == read_artifact_info(d).preprocess
    r = run_cli("parity", d, tmp_path / "onnx", "--num-random", "2", "--json")
    assert r.code == 0, r.stdout + r.stderr
