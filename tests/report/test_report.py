"""``vitdeploy report``: a run directory's artifacts and the results parity, eval and bench saved
with --save, as one self-contained HTML page and its Markdown twin.

The results are real: the commands run once per module on the sample's export (the fast tier)
or on its export and ONNX conversion (slow: tests/conftest.py marks tests using sample_onnx)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, assert_one_line_error, invoke, run_cli

from vitdeploy.report import build_report
from vitdeploy.report.render import md_escape, md_line

IMG = '<img src="data:image/png;base64,'
BENCH_FAST = ("--repeat", "2", "--batch-sizes", "1,2", "--warmup", "1")


def _ok(r) -> None:
    assert r.code == 0, (r.code, r.stderr[-2000:])


@pytest.fixture(scope="module")
def fast_run(sample, sample_export, tmp_path_factory) -> Path:
    """One artifact (a symlinked export) and its three saved results."""
    run = tmp_path_factory.mktemp("run") / "run"
    run.mkdir()
    (run / "export").symlink_to(sample_export, target_is_directory=True)
    art = run / "export"
    _ok(run_cli("parity", art, art, "--num-random", "2", "--batch-sizes", "1,2",
                "--save", run / "parity.json", timeout=600))
    _ok(run_cli("eval", art, "--data", ROOT / sample["test_dir"], "--limit", "30",
                "--save", run / "eval.json", timeout=600))
    _ok(run_cli("bench", art, *BENCH_FAST, "--save", run / "bench.json", timeout=600))
    return run


def _copy(run: Path, dest: Path, *results: str) -> Path:
    """A run directory with the same artifacts (symlinked) and the named result files."""
    dest.mkdir()
    for p in run.iterdir():
        if p.is_dir():
            (dest / p.name).symlink_to(p.resolve(), target_is_directory=True)
        elif p.name in results:
            shutil.copy(p, dest / p.name)
    return dest


def _read(result) -> tuple[str, str]:
    return Path(result.html).read_text(encoding="utf-8"), Path(result.markdown).read_text(encoding="utf-8")


def test_report_holds_every_table_and_both_plots(fast_run, tmp_path):
    res = build_report(fast_run, tmp_path / "out" / "report.html")
    page, md = _read(res)
    assert (res.artifacts, res.plots) == (1, 2)
    assert res.results == {"parity": 1, "eval": 1, "bench": 1, "optimize": 0}
    assert res.sections == ["artifacts", "parity", "eval", "bench", "plots"] and res.missing == ["optimize"]
    # artifacts, parity, eval, bench p50 + detail
    assert page.count("<table>") == 5 and page.count(IMG) == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page
    for title in ("Export and conversion", "Parity with the Paddle fp32 reference", "Accuracy",
                  "Speed", "Plots"):
        assert title in page and title in md
    # numbers from the saved results, formatted as the CLI prints them
    par = json.loads((fast_run / "parity.json").read_text())["results"][0]
    ev = json.loads((fast_run / "eval.json").read_text())["results"][0]
    bench = json.loads((fast_run / "bench.json").read_text())
    p50 = {r["batch_size"]: r["p50_ms"] for r in bench["results"]}
    for text in (f"{par['cosine_min']:.7f}", f"{ev['top1']:.2%}", f"{p50[1]:.2f}", f"{p50[2]:.2f}",
                 f"{bench['gemm_gflops']:.1f} GFLOP/s", bench["machine"]["cpu"],
                 "DeiT_digits_patch8_32", "digits_deit.pdparams"):
        assert text in page and text in md, text
    assert '<span class="pass">pass</span>' in page
    # the Markdown: the same tables, the plots as PNG files beside it
    assert len(re.findall(r"^\|[-:|]+\|$", md, re.M)) == 5  # a separator line per table
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["report_files/latency.png", "report_files/accuracy_latency.png"]
    for link in links:
        assert (tmp_path / "out" / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.md",
                                                                   "report_files"]


def test_cli_default_out_force_and_json(fast_run, tmp_path):
    run = _copy(fast_run, tmp_path / "run", "parity.json", "eval.json", "bench.json")
    r = invoke("report", run)
    _ok(r)
    assert (run / "report.html").is_file() and (run / "report.md").is_file()
    before = (run / "report.html").read_bytes()
    assert_one_line_error(invoke("report", run), "report.html exists", "--force")
    assert (run / "report.html").read_bytes() == before  # untouched
    r = invoke("report", run, "--force", "--json")  # the report's own files are not inputs
    _ok(r)
    data = json.loads(r.stdout)
    assert data["html"] == str(run / "report.html") and data["plots"] == 2 and data["ignored"] == []


def test_the_same_results_give_the_same_report(fast_run, tmp_path):
    a = build_report(fast_run, tmp_path / "a" / "report.html")
    b = build_report(fast_run, tmp_path / "b" / "report.html")
    assert _read(a) == _read(b)
    for name in ("latency.png", "accuracy_latency.png"):
        assert (Path(a.plots_dir) / name).read_bytes() == (Path(b.plots_dir) / name).read_bytes()


def test_user_text_is_escaped(fast_run, tmp_path):
    hostile = '<img src=x onerror=alert(1)> & "q" | *b* [l](u) $x^$'
    run = _copy(fast_run, tmp_path / "run", "parity.json")
    shutil.copytree(fast_run / "export", run / hostile)  # an artifact directory named so
    for name in ("eval.json", "bench.json"):  # and results naming it (in the plots' legends too)
        doc = json.loads((fast_run / name).read_text())
        for row in doc["results"]:
            row["artifact"] = f"{run}/{hostile}"
        (run / name).write_text(json.dumps(doc))
    res = build_report(run, tmp_path / "r.html")
    page, md = _read(res)
    assert res.plots == 2
    assert "onerror=alert(1)>" not in page and "<script" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;" in page
    assert all(tag.startswith(IMG) for tag in re.findall(r"<img [^>]*>", page))
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; \"q\" \\| \\*b\\* \\[l\\](u) \\$x^\\$" in md
    assert "<img" not in md


def test_markdown_escaping():
    assert md_escape("onnx_int8 | <b>") == "onnx_int8 \\| &lt;b&gt;"
    assert md_escape("_x_ *y* `z`") == "\\_x\\_ \\*y\\* \\`z\\`"
    assert md_escape("a\nb") == "a b"
    assert md_line("# not a heading") == "\\# not a heading" and md_line("1. x") == "1\\. x"


def test_missing_parts_say_how_to_add_them(fast_run, tmp_path):
    run = _copy(fast_run, tmp_path / "run", "eval.json")
    res = build_report(run, tmp_path / "r.html")
    page, md = _read(res)
    assert res.missing == ["parity", "bench", "plots", "optimize"]
    assert res.plots == 0 and res.plots_dir is None
    for kind in ("parity", "bench"):
        assert f"--save {run.as_posix()}/{kind}.json" in page
        assert f"--save {run.as_posix()}/{kind}.json" in md
    assert IMG not in page and "Not run. Save it with" in md
    assert not (tmp_path / "r_files").exists()

    only_bench = _copy(fast_run, tmp_path / "run2", "bench.json")
    (only_bench / "export").unlink()  # results alone are enough
    res = build_report(only_bench, tmp_path / "r2.html")
    page, _ = _read(res)
    assert res.plots == 1 and page.count(IMG) == 1 and res.artifacts == 0
    assert "Accuracy against latency: no eval results." in page


def test_errors_are_one_line(fast_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(invoke("report", empty), "holds no artifact directories",
                          "nothing to report")
    assert_one_line_error(invoke("report", tmp_path / "nope"), "not found")
    assert not list(empty.iterdir())

    run = _copy(fast_run, tmp_path / "run", "eval.json")
    (run / "broken.json").write_text("{not json")
    assert_one_line_error(invoke("report", run), str(run / "broken.json"), "not valid JSON")
    (run / "broken.json").write_text('{"vitdeploy_result": "bench", "results": []}')
    assert_one_line_error(invoke("report", run), str(run / "broken.json"),
                          "not a valid vitdeploy bench result")
    (run / "broken.json").unlink()
    assert not (run / "report.html").exists()

    assert_one_line_error(invoke("report", run, "--out", tmp_path / "r.txt"), "must end in .html")
    (tmp_path / "r_files").mkdir()
    (tmp_path / "r_files" / "keep.txt").write_text("mine")
    assert_one_line_error(invoke("report", run, "--out", tmp_path / "r.html", "--force"),
                          "is not a report's plot folder")
    assert (tmp_path / "r_files" / "keep.txt").read_text() == "mine"

    (run / "config.json").write_text('{"not": "a result"}')  # other JSON: noted, not read
    r = invoke("report", run, "--out", tmp_path / "ok.html")
    _ok(r)
    assert "ignored" in r.stderr and "config.json" in r.stderr


@pytest.fixture(scope="module")
def full_run(sample, sample_export, sample_onnx, tmp_path_factory) -> Path:
    """Two artifacts (export symlinked, onnx copied), two parity results (one failing its
    check: saved all the same, exit 2), eval and bench."""
    run = tmp_path_factory.mktemp("full") / "run"
    run.mkdir()
    (run / "export").symlink_to(sample_export, target_is_directory=True)
    shutil.copytree(sample_onnx, run / "onnx")
    ref, onnx = run / "export", run / "onnx"
    _ok(run_cli("parity", ref, onnx, "--num-random", "4", "--batch-sizes", "1,2",
                "--save", run / "parity.json", timeout=600))
    r = run_cli("parity", ref, onnx, "--num-random", "4", "--batch-sizes", "1,2",
                "--max-abs", "1e-12", "--save", run / "parity_strict.json", timeout=600)
    assert r.code == 2, r.stderr
    _ok(run_cli("eval", ref, onnx, "--data", ROOT / sample["test_dir"], "--limit", "30",
                "--save", run / "eval.json", timeout=600))
    _ok(run_cli("bench", ref, onnx, *BENCH_FAST, "--save", run / "bench.json", timeout=600))
    _ok(run_cli("report", run, timeout=300))
    return run


def test_full_report(full_run):
    page = (full_run / "report.html").read_text(encoding="utf-8")
    md = (full_run / "report.md").read_text(encoding="utf-8")
    strict = json.loads((full_run / "parity_strict.json").read_text())
    assert strict["passed"] is False and strict["vitdeploy_result"] == "parity"
    assert page.count("<table>") == 6 and page.count(IMG) == 2  # 2 parity tables
    assert '<span class="fail">FAIL</span>' in page and "max abs" in page
    assert "1 of 1 failed" in page and "all artifacts agree with the reference" in page
    assert "❌ FAIL: max abs" in md
    assert "onnx" in page and ">opset 17, precision fp32<" in page
    assert "1 of 2 pass" in page  # the overview counts every parity row


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180, cwd=tmp)


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="chromium is not installed (make sysdeps installs it)")
def test_report_renders_in_a_browser(full_run, tmp_path):
    """Headless Chromium, offline: the tables are in the rendered DOM and the plots are drawn."""
    import numpy as np
    from PIL import Image

    url = (full_run / "report.html").resolve().as_uri()
    dom = _chromium("--dump-dom", url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table>") == 6 and dom.stdout.count(IMG) == 2
    shot = tmp_path / "shot.png"
    r = _chromium(f"--screenshot={shot}", "--window-size=1280,4000", url, tmp=tmp_path)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert px.shape[:2] == (4000, 1280)
    assert (px.min(axis=2) < 200).mean() > 0.02  # text and tables, not a blank page
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 500  # anti-aliased text and plots
    # the plots' lines: matplotlib's first two colours (export, onnx), found nowhere else
    for rgb in ((31, 119, 180), (255, 127, 14)):
        near = (np.abs(px - np.array(rgb)).max(axis=2) <= 12).sum()
        assert near > 200, (rgb, near)


def _numbers(kind: str) -> list[str]:
    from vitdeploy.check.results import _RANGE

    return list(_RANGE[kind])


def _rewrite(src: Path, dest: Path, value_text: str) -> None:
    """``src`` with every number the report reads replaced by ``value_text`` (a JSON literal)."""
    doc = json.loads(src.read_text())
    kind = doc["vitdeploy_result"]
    marker = "__VALUE__"
    for row in doc["results"]:
        for key in _numbers(kind):
            if key not in ("n", "batch_size", "samples"):  # integers: refused when null
                row[key] = marker
    if kind == "bench":
        doc["gemm_gflops"] = marker
    dest.write_text(json.dumps(doc).replace(f'"{marker}"', value_text))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_show_as_na(fast_run, tmp_path, literal):
    """Python's json writes NaN/Infinity; a results file is user input: non-finite numbers are
    shown as n/a, never an internal error (matplotlib refuses NaN axis limits)."""
    run = _copy(fast_run, tmp_path / "run", "parity.json", "eval.json")
    for name in ("parity.json", "eval.json", "bench.json"):
        _rewrite(fast_run / name, run / name, literal)
    r = run_cli("report", run, "--json", timeout=300)
    _ok(r)
    assert r.stderr == ""  # no warning from the plots either
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "n/a" in page and "NaN" not in page and "inf" not in page.lower().replace("info", "")


@pytest.mark.parametrize("kind", ["parity", "eval", "bench"])
def test_out_of_range_numbers_are_refused_naming_the_field(fast_run, tmp_path, kind):
    from vitdeploy.check.results import ResultError, parse_result

    base = json.loads((fast_run / f"{kind}.json").read_text())
    for key in _numbers(kind):
        for value in (10**400, 1e308, -(10**30)):
            doc = json.loads(json.dumps(base))
            doc["results"][0][key] = value
            with pytest.raises(ResultError, match=re.escape(f"results[0].{key} = ")) as e:
                parse_result(doc, "r.json")
            assert "out of range" in str(e.value) and len(str(e.value)) < 300


@pytest.mark.parametrize("name,field,text", [
    ("bench.json", "p50_ms", "1" * 401),
    ("eval.json", "top1", "1e308"),
    ("eval.json", "n", str(10**30)),
    ("bench.json", "p50_ms", "1" * 5000),  # longer than Python parses an integer
])
def test_huge_numbers_are_one_line(fast_run, tmp_path, name, field, text):
    run = _copy(fast_run, tmp_path / "run", "parity.json", "eval.json", "bench.json")
    doc = json.loads((run / name).read_text())
    doc["results"][0][field] = "__VALUE__"
    (run / name).write_text(json.dumps(doc).replace('"__VALUE__"', text))
    r = invoke("report", run)
    needle = "not valid JSON" if len(text) > 4300 else f"results[0].{field} = "
    assert_one_line_error(r, str(run / name), needle)
    assert not (run / "report.html").exists() and not (run / "report_files").exists()
