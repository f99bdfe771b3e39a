"""No figure in the README or docs/ contradicts the file it was measured into.

Each bench that the pages quote writes `bench/<name>.json`; the tests below format that file the way the bench
prints it (with the bench's own formatting function where it has one) and require the printed lines, and a few
figures quoted in prose, to appear on the page that cites `python -m bench.<name>`. The reference run's table in
the README and in docs/reference.md is recomputed from `results/` by `distill.comparison`, the code the app uses.
Change a number on a page, or a json file, and a test here fails. Benches that write no file (`bench.memory`,
`bench.chat_p50`) are checked only for being quoted once.
"""

import contextlib
import io
import json
import re
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8")
    for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
}
README = PAGES["README.md"]
PERFORMANCE = "docs/performance.md"


def flat(text: str) -> str:
    """Whitespace runs as one space, so that a line wrapped on the page still matches."""
    return re.sub(r"\s+", " ", text).strip()


def bench(name: str) -> dict:
    return json.loads((ROOT / "bench" / f"{name}.json").read_text())


def printed(function, *args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args)
    return out.getvalue() + (result if isinstance(result, str) else "")


def table_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("|")]


def assert_on_page(page: str, lines: list[str], command: str) -> None:
    text = flat(PAGES[page])
    assert command in text, f"{page} does not name {command}"
    missing = [line for line in lines if flat(line) not in text]
    assert not missing, f"{page}: these lines printed from {command}'s file are not on the page:\n" + "\n".join(missing)


def test_the_readme_is_a_front_page():
    lines = README.splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines"
    headings = [line for line in lines if line.startswith("## ")]
    # usage first, then the answer, then setting up, then use from code, then the links
    order = ["How to use it", "What it found", "Set up and test", "Use it from code", "More"]
    assert [h.removeprefix("## ") for h in headings] == order


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_every_relative_link_points_to_a_file_and_heading():
    broken = []
    for page, text in PAGES.items():
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (ROOT / page).parent / path if path else ROOT / page
            if not file.exists():
                broken.append(f"{page}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text(encoding="utf-8")):
                broken.append(f"{page}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


# --- bench files: each printed line on the page that cites the bench ---------------------------------------------


STUDENT_DEFAULTS = "student, frozen, no dropout, last layer for [CLS] only (the defaults)"


def roofline_lines(r: dict) -> list[str]:
    """The lines bench.roofline prints from its file `r`: its heading, the peak alongside, both tables."""
    from bench.roofline import split_line, step_line

    peak = r["sustained_bf16_gflops"]
    assert all(s["share_of_peak"] == pytest.approx(s["gflops"] / peak) for s in r["steps"].values())
    fp32 = max(r["matmul_gflops"]["fp32"].values())
    return [
        f"Roofline on {r['machine']}; sustained peak: bf16 {peak:.0f} GFLOP/s, fp32 {fp32:.0f} GFLOP/s",
        f"median of bursts between them): {r['bf16_gflops_alongside_the_steps']:.0f} GFLOP/s",
        *(step_line(name, s) for name, s in r["steps"].items()),
        *(split_line(name, row) for name, row in r["matmul_split"].items()),
    ]


def test_roofline():
    from bench.roofline import STUDENT_COMPILED, STUDENT_ROUNDED, TEACHER_COMPILED, TEACHER_DEFAULTS

    defaults = STUDENT_DEFAULTS

    r = bench("roofline")
    lines = roofline_lines(r)
    total = sum(r["student_epoch_seconds"].values())
    lines += [f"| {phase} | {s:.1f} | {s / total:.0%} |" for phase, s in r["student_epoch_seconds"].items()]
    lines.append(", ".join(f"{b} {t:.1f} s" for b, t in r["evaluation_seconds"].items()))
    assert_on_page(PERFORMANCE, lines, "python -m bench.roofline")
    steps = {name: s["ms_per_step"] for name, s in r["steps"].items()}
    default = steps[defaults]
    no_dropout = steps["student, word embeddings frozen, no dropout"]
    before = steps["student, as before (every weight trained, dropout 0.1)"]
    one_thread = steps["student, frozen, no dropout, on 1 thread instead of 2"]
    passes = steps["student, frozen, no dropout, in passes of at most 1,024 tokens (forward in backward)"]
    teacher = steps["teacher fine-tuning as before (dropout 0.1, every weight trained)"]
    teacher_passes = steps["teacher fine-tuning as before, in passes of 1,024 tokens"]
    compiled, teacher_compiled = (r["steps"][name] for name in (STUDENT_COMPILED, TEACHER_COMPILED))
    teacher_default = r["steps"][TEACHER_DEFAULTS]
    evaluation = r["evaluation_seconds"]
    cls_only_eval = evaluation["batch 64"] / evaluation["batch 64, last layer for [CLS] only"]
    flops = r["flops_check"]
    split = r["matmul_split"]
    student_split, compiled_split, teacher_split = split[defaults], split[STUDENT_COMPILED], split[TEACHER_DEFAULTS]
    assert list(split) == [defaults, STUDENT_COMPILED, TEACHER_DEFAULTS, TEACHER_COMPILED]
    prose = [
        f"make a student step {before / no_dropout:.2f}x faster together",
        f"One thread instead of two is {one_thread / no_dropout:.2f}x slower",
        f"makes it {no_dropout / default:.2f}x faster ({no_dropout:.0f} to {default:.0f} ms)",
        f"removes {1 - flops['cls_only']['formula'] / flops['full']['formula']:.0%} of a student step's FLOPs",
        f"{flops['cls_only']['flop_counter'] / 1e9:.1f} against {flops['full']['flop_counter'] / 1e9:.1f} GFLOP",
        f"the [CLS]-only last layer makes it {cls_only_eval:.2f}x faster",
        f"the student step is {default / compiled['ms_per_step']:.2f}x faster and the teacher's "
        f"{teacher_default['ms_per_step'] / teacher_compiled['ms_per_step']:.2f}x, after "
        f"{compiled['warmup_seconds'] - r['steps'][defaults]['warmup_seconds']:.0f} s and "
        f"{teacher_compiled['warmup_seconds'] - teacher_default['warmup_seconds']:.0f} s of compiling",
        f"the step is {steps[STUDENT_ROUNDED] / default:.2f}x slower in\nthe row above",
        f"The defaults reach {r['steps'][defaults]['share_of_peak']:.0%} (student) and "
        f"{teacher_default['share_of_peak']:.0%} (teacher) of this CPU's bf16 peak, and "
        f"{compiled['share_of_peak']:.0%} and {teacher_compiled['share_of_peak']:.0%} compiled: not 60%",
        f"against the peak alongside them, {r['steps'][defaults]['share_of_peak_alongside']:.0%} and "
        f"{teacher_default['share_of_peak_alongside']:.0%}, and {compiled['share_of_peak_alongside']:.0%} and "
        f"{teacher_compiled['share_of_peak_alongside']:.0%} compiled",
        f"{student_split['matmul_share_of_peak_alongside']:.0%} of it in the student step, "
        f"{teacher_split['matmul_share_of_peak_alongside']:.0%} in the teacher's",
        f"fit in {student_split['rest_ms_at_target']:.0f} ms, where it takes {student_split['rest_ms']:.0f} ms "
        "profiled",
        f"the unprofiled step is {student_split['ms_per_step']:.0f} ms against {student_split['matmul_ms']:.0f} in "
        "matmuls",
        f"to {compiled_split['rest_ms']:.0f} ms, where {compiled_split['rest_ms_at_target']:.0f} would be needed: the "
        f"student step is about {compiled_split['rest_ms'] - compiled_split['rest_ms_at_target']:.0f} ms short",
        f"({split[TEACHER_COMPILED]['rest_ms']:.0f} ms against {split[TEACHER_COMPILED]['rest_ms_at_target']:.0f})",
        f"in this roofline at 1,024 tokens a teacher step took {teacher_passes:.0f} against {teacher:.0f} ms and a "
        f"student step {passes:.0f} against {no_dropout:.0f} ms",
    ]
    assert_on_page(PERFORMANCE, prose, "python -m bench.roofline")


def _variants(*args) -> str:
    from bench.speedups import print_variants  # teacher_speedups prints with the same function

    return printed(print_variants, *args)


def test_speedups():
    r = bench("speedups")
    lines = table_lines(_variants("t", "variant", "s per student", r["variants"], "student_seconds", 1))
    assert_on_page(PERFORMANCE, lines, "python -m bench.speedups")
    v = list(r["variants"].values())
    prose = [
        f"{v[3]['student_seconds'][0] / v[4]['student_seconds'][0]:.2f}x over the row before it",
        f"({100 * (v[4]['validation_matched'][0] - v[3]['validation_matched'][0]):+.1f} and "
        f"{100 * (v[4]['validation_mismatched'][0] - v[3]['validation_mismatched'][0]):+.1f} points)",
        f"{100 * (v[2]['validation_matched'][0] - v[1]['validation_matched'][0]):+.1f} points on matched and "
        f"{100 * (v[2]['validation_mismatched'][0] - v[1]['validation_mismatched'][0]):+.1f} on mismatched",
        f"its accuracy is the eager one's ({100 * (v[5]['validation_matched'][0] - v[4]['validation_matched'][0]):+.1f}"
        f"\nand {100 * (v[5]['validation_mismatched'][0] - v[4]['validation_mismatched'][0]):+.1f} points), and a "
        f"student costs {v[5]['student_seconds'][0]:.1f} s against {v[4]['student_seconds'][0]:.1f}",
        ", ".join(f"{seconds:.1f}" for seconds in v[5]["each_student_seconds"].values()),
        f"took {v[6]['wall_per_student']:.1f} s per student against {v[4]['wall_per_student']:.1f} one at\na time",
        f"{v[4]['wall_per_student'] / v[6]['wall_per_student']:.2f}x, with the eager accuracy "
        f"({100 * (v[6]['validation_matched'][0] - v[4]['validation_matched'][0]):+.1f} and "
        f"{100 * (v[6]['validation_mismatched'][0] - v[4]['validation_mismatched'][0]):+.1f} points)",
        ", ".join(f"{seconds:.1f}" for seconds in v[6]["each_student_seconds"].values()),
    ]
    assert [run["variants"] for run in r["runs"]] == [list(r["variants"])[:4], list(r["variants"])[4:]]
    assert_on_page(PERFORMANCE, prose, "python -m bench.speedups")


def test_teacher_speedups():
    r = bench("teacher_speedups")
    text = _variants("t", "teacher fine-tuning", "seconds", r["variants"], "seconds", 0)
    assert_on_page(PERFORMANCE, table_lines(text), "python -m bench.teacher_speedups")
    before, after = r["variants"].values()
    gain = 100 * (after["validation_matched"][0] - before["validation_matched"][0])
    assert_on_page(PERFORMANCE, [f"{gain:.1f} points higher on matched"], "python -m bench.teacher_speedups")


def test_peer():
    from bench.peer import show

    text = printed(show, bench("peer"))
    lines = table_lines(text) + [line for line in text.splitlines() if line.startswith("all ")]
    assert_on_page(PERFORMANCE, lines, "python -m bench.peer")


def test_concurrency():
    from bench.concurrency import show

    text = printed(show, bench("concurrency"))
    lines = [*table_lines(text), text.splitlines()[0]]
    arms = list(bench("concurrency")["arms"].values())
    prose = [
        f"train {arms[1]['vs_one_after_the_other']:.2f}x more tokens a second",
        f"give the same {arms[2]['vs_one_after_the_other']:.2f}x",
    ]
    assert_on_page(PERFORMANCE, lines + prose, "python -m bench.concurrency")


def test_compare_pipelines():
    from bench.compare_pipelines import format_report

    text = format_report(bench("results"))
    lines = table_lines(text) + [line for line in text.splitlines() if line.startswith(("/chat", "Full comparison"))]
    assert_on_page(PERFORMANCE, lines, "python -m bench.compare_pipelines")


def test_onednn_cache():
    from bench.onednn_cache import show

    assert_on_page(PERFORMANCE, table_lines(printed(show, bench("onednn_cache"))), "python -m bench.onednn_cache")


def test_eight_bit():
    from bench.eight_bit import format_report

    r = bench("eight_bit")
    assert_on_page(PERFORMANCE, table_lines(format_report(r)), "python -m bench.eight_bit")
    t, o = r["teacher_pass"], r["optimizer"]
    prose = [
        f"The 8-bit teacher is {t['8-bit (bf16)']['seconds'] / t['bf16']['seconds']:.1f}x slower than the bf16 teacher",
        f"saves {t['bf16']['weights_mb'] - t['8-bit (bf16)']['weights_mb']:.0f} MB",
        f"changes {t['8-bit (bf16)']['labels_changed']:.1%} of its predicted labels on {r['rows']:,}",
        f"8-bit AdamW is {o['AdamW8bit']['ms_per_step'] / o['AdamW']['ms_per_step']:.2f}x slower per step",
    ]
    assert_on_page(PERFORMANCE, prose, "python -m bench.eight_bit")


def test_precision():
    from bench.precision import summary

    lines = [summary(machine) for machine in bench("precision")["machines"]]
    assert lines and all("auto picks" in line for line in lines)
    assert_on_page(PERFORMANCE, lines, "python -m bench.precision")


def test_amx():
    """Another CPU's files, `bench/amx/`, are on their own section, with the figures its prose derives from them."""
    from bench.concurrency import AT_ONCE, LARGER_BATCH, STACKED
    from bench.concurrency import show as concurrency_table
    from bench.onednn_cache import show
    from bench.peer import show as peer_table
    from bench.peer import students
    from bench.roofline import STUDENT_COMPILED, TEACHER_COMPILED, TEACHER_DEFAULTS

    r, dev = bench("amx/roofline"), bench("roofline")
    assert "amx_bf16" in r["cpu"]["matmul_flags"] and "amx_bf16" not in dev["cpu"]["matmul_flags"]
    section = PAGES[PERFORMANCE].split("### On a CPU with AMX")[1].split("\n### ")[0]
    cache = bench("amx/onednn_cache")
    assert cache["machine"] == r["machine"]
    lines = roofline_lines(r) + table_lines(printed(show, cache))
    missing = [line for line in lines if flat(line) not in flat(section)]
    assert not missing, "not in the AMX section:\n" + "\n".join(missing)

    ms = {name: s["ms_per_step"] for name, s in r["steps"].items()}
    split = r["matmul_split"].values()
    arms = {arm: runs for arm, runs in cache["arms"].items()}
    low, high = arms["16"], arms["oneDNN's default (1,024)"]
    dev_compiled = bench("onednn_cache")["arms"]["16"]
    one_thread = ms["student, frozen, no dropout, on 1 thread instead of 2"]

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    prose = [
        f"The peak is {r['sustained_bf16_gflops'] / dev['sustained_bf16_gflops']:.1f} times the development",
        f"the default student step is only {dev['steps'][STUDENT_DEFAULTS]['ms_per_step'] / ms[STUDENT_DEFAULTS]:.2f}x"
        f" faster ({ms[STUDENT_DEFAULTS]:.0f} ms against {dev['steps'][STUDENT_DEFAULTS]['ms_per_step']:.0f}) and the"
        f" teacher's {dev['steps'][TEACHER_DEFAULTS]['ms_per_step'] / ms[TEACHER_DEFAULTS]:.2f}x",
        f"the defaults reach {r['steps'][STUDENT_DEFAULTS]['share_of_peak']:.0%} (student) and "
        f"{r['steps'][TEACHER_DEFAULTS]['share_of_peak']:.0%} (teacher)",
        f"run at {min(s['matmul_share_of_peak_alongside'] for s in split):.0%} to "
        f"{max(s['matmul_share_of_peak_alongside'] for s in split):.0%} of the peak alongside",
        f"torch.compile gains {ms[STUDENT_DEFAULTS] / ms[STUDENT_COMPILED]:.2f}x (student) and "
        f"{ms[TEACHER_DEFAULTS] / ms[TEACHER_COMPILED]:.2f}x (teacher) there, after "
        f"{r['steps'][STUDENT_COMPILED]['warmup_seconds'] - r['steps'][STUDENT_DEFAULTS]['warmup_seconds']:.0f} s and "
        f"{r['steps'][TEACHER_COMPILED]['warmup_seconds'] - r['steps'][TEACHER_DEFAULTS]['warmup_seconds']:.0f} s",
        f"One thread instead of two is {one_thread / ms['student, word embeddings frozen, no dropout']:.2f}x",
        f"compiles {median(low, 'compiles') / median(high, 'compiles'):.1f} times as many primitives",
        f"({median(low, 'compile_seconds'):.1f} s for the {median(low, 'compiles'):,.0f} against "
        f"{median(dev_compiled, 'compile_seconds'):.1f} s there)",
        f"for {max(x['peak_gib'] for x in high) - max(x['peak_gib'] for x in low):.2f} GiB less",
    ]
    concurrency, dev_concurrency = bench("amx/concurrency"), bench("concurrency")
    peer, dev_peer = bench("amx/peer"), bench("peer")
    lines = table_lines(printed(concurrency_table, concurrency)) + table_lines(peer_text := printed(peer_table, peer))
    lines += [line for line in peer_text.splitlines() if line.startswith("all ")]
    missing = [line for line in lines if flat(line) not in flat(section)]
    assert not missing, "not in the AMX section:\n" + "\n".join(missing)
    gain = {arm: row["vs_one_after_the_other"] for arm, row in concurrency["arms"].items()}
    dev_gain = {arm: row["vs_one_after_the_other"] for arm, row in dev_concurrency["arms"].items()}

    def per_student(side: dict) -> float:
        return statistics.mean(m["seconds"] for m in students(side).values())

    def faster(side: str) -> float:
        return per_student(dev_peer[side]) / per_student(peer[side])

    def whole(result: dict) -> float:
        return result["trainer"]["seconds"] / result["pipeline"]["seconds"]

    prose += [
        f"two at once train {gain[AT_ONCE]:.2f}x the tokens a second ({dev_gain[AT_ONCE]:.2f}x on the development",
        f"batches 4x as large {gain[LARGER_BATCH]:.2f}x ({dev_gain[LARGER_BATCH]:.2f}x)",
        f"It is {gain[STACKED]:.2f}x, slower than one after the other",
        f"{whole(peer):.2f}x for the whole comparison there, against {whole(dev_peer):.2f}x on the development",
        f"its students took {faster('trainer'):.2f}x less time than on the development machine and this "
        f"pipeline's {faster('pipeline'):.2f}x",
    ]
    assert gain[STACKED] < 1  # "slower"
    assert all(s["rest_ms_at_target"] < 0 for s in split)  # "The last column is negative"
    missing = [line for line in prose if flat(line) not in flat(section)]
    assert not missing, "not in the AMX section:\n" + "\n".join(missing)


def test_chat_load():
    r = bench("chat_load")
    line = (
        f"{r['clients']} chat clients for {r['seconds']:.0f} s while a job trained "
        f"({r['job']['steps_during_load']} steps): {r['requests']} requests, {r['errors']} errors, "
        f"{r['requests_per_s']} requests/s; p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
        f"p99 {r['p99_ms']:.0f} ms. A second job submitter was told: {r['queue']['state']}, "
        f"{r['queue']['queue_position']} job(s) ahead."
    )
    assert_on_page(
        PERFORMANCE, [line, f"On this {r['machine'].replace(' CPU cores', '-core')} CPU"], "python -m bench.chat_load"
    )


def test_quick_student():
    r = bench("quick_student")
    line = (
        f"quick student: {r['seconds'] / 60:.1f} min on {r['machine']}; student {r['student_accuracy']:.1%}, "
        f"teacher {r['teacher_accuracy']:.1%} on {r['eval_rows']} validation_matched rows"
    )
    assert_on_page("docs/space-owner.md", [line], "python -m bench.quick_student")


def test_figures_without_a_file_are_quoted_once():
    """bench.memory and bench.chat_p50 print their figures and write no file: each is quoted on one page only."""
    everything = flat("\n".join(PAGES.values()))
    for figure in ("**6.6 min**", "**1.66 GiB**", "28.6 ms over HTTP", "76.1 ms with gradio_client"):
        assert everything.count(figure) == 1, figure
    assert "3.06 GiB" not in everything and "p50 38 ms" not in everything and "about 9 min" not in everything


# --- the reference run: recomputed by the code the app uses ---------------------------------------------------------


@pytest.fixture(scope="module")
def reference():
    from distill.comparison import comparison
    from distill.results import open_run

    return comparison(open_run(ROOT / "results" / "reference"))


def _row(r: dict) -> str:
    """A README row from the app's record: accuracy, spread, difference from the best with its interval, p."""
    layers = ",".join(str(i) for i in r["layers"])
    if r["role"] == "teacher":
        return f"| teacher | {layers} | {r['accuracy']:.2%} | | | |"
    accuracy = f"{r['accuracy']:.2%} ± {r['accuracy_std']:.2%}"
    if r.get("best"):
        return f"| {r['strategy']} | {layers} | {accuracy} | best | | |"
    p = "<0.001" if r["p_value"] < 0.001 else f"{r['p_value']:.3f}"
    difference = f"{r['diff_vs_best']:+.1%} [{r['diff_low']:+.1%}, {r['diff_high']:+.1%}]"
    return f"| {r['strategy']} | {layers} | {accuracy} | {difference} | {p} | {'yes' if r['significant'] else 'no'} |"


@pytest.mark.slow
def test_readme_reference_table_is_the_apps(reference):
    """One p per pair, the app's: Holm over the run's own pairs of strategies, and the README says so."""
    assert_on_page("README.md", [_row(r) for r in reference], "python -m distill report results/reference")
    strategies = len(reference) - 1
    family = f"Holm-adjusted over the {strategies * (strategies - 1) // 2} pairs of this run's {strategies} strategies"
    assert family in flat(README)


def test_reference_page_table_has_the_apps_values(reference):
    """docs/reference.md pastes the report's table: each strategy's line has its accuracy, spread and p."""
    block = re.search(
        r"python -m distill report results/reference --pairwise`.*?```\n(.*?)```", PAGES["docs/reference.md"], re.S
    )
    lines = {line.split()[0]: line for line in block.group(1).splitlines()[2:]}
    for r in reference:
        spread = f"{r['accuracy_std']:.2%}" if r["seeds"] > 1 else "-"  # one seed has no spread
        expected = [f"{r['accuracy']:.2%}", spread, f"{r['other_accuracy']:.2%}"]
        if r.get("p_value") is not None:
            expected.append("<0.001" if r["p_value"] < 0.001 else f"{r['p_value']:.3f}")
        assert all(value in lines[r["strategy"]] for value in expected), (r["strategy"], expected)
    assert "Holm-adjusted over the 10 pairs" in flat(PAGES["docs/reference.md"])


@pytest.mark.slow
def test_controls_of_another_teacher_are_pasted_untested():
    """The controls learned from another fine-tuning of the teacher: the page pastes them as the report shows
    them, with their differences untested and outside the run's family, and claims no p for them."""
    from distill.comparison import comparison
    from distill.results import open_run

    runs = ROOT / "results"
    controls = [open_run(runs / "control-random"), open_run(runs / "control-hard-labels")]
    table = comparison(open_run(runs / "reference"), controls=controls)
    pattern = r"--controls control-random\ncontrol-hard-labels`.*?```\n(.*?)```"
    block = re.search(pattern, PAGES["docs/reference.md"], re.S)
    lines = {line.split()[0]: line for line in block.group(1).splitlines()[2:]}
    for r in table:
        if ":" in r["strategy"]:
            assert r["p_value"] is None and f"{r['accuracy']:.2%}" in lines[r["strategy"]]
            assert "another teacher: untested" in lines[r["strategy"]]
    text = flat(PAGES["docs/reference.md"])
    assert "21 pairs" not in text and "with the controls" not in text
    assert "0.212" not in README and "0.328" not in text  # no p from a family that mixes teachers


def test_scaling_projection():
    """The full-size job's cost on Jobs, as the launcher's own estimate prints it today."""
    from bench.scaling import print_projected, project

    lines = [line for line in printed(print_projected, project()).splitlines() if line.startswith(("| a", "PROJ"))]
    assert len(lines) == 4
    assert_on_page(PERFORMANCE, lines, "python -m bench.scaling --project-only")


@pytest.mark.slow
def test_three_teacher_reference_is_pasted_as_the_report_prints_it():
    """docs/reference.md pastes the three-teacher run's table and both splits' pairs; its prose figures are the
    pairs' own, and every test in it counts the teachers."""
    from distill.comparison import comparison, pairwise
    from distill.results import open_run

    run = open_run(ROOT / "results" / "reference-3-teachers")
    page = PAGES["docs/reference.md"]
    block = re.search(r"reference-3-teachers --results-dir results --pairwise` .*?```\n(.*?)```", page, re.S).group(1)
    table = block.split("\n\n")[0]  # the table, before the verdict and the pairs
    lines = {line.split()[0]: line for line in table.splitlines()[2:]}
    for r in comparison(run):
        expected = [f"{r['accuracy']:.2%}", f"{r['accuracy_std']:.2%}", f"{r['other_accuracy']:.2%}"]
        if r.get("p_value") is not None:
            expected.append("<0.001" if r["p_value"] < 0.001 else f"{r['p_value']:.3f}")
            assert "teachers" in r["test"], r["test"]  # the teacher is the unit of every test
        assert all(value in lines[r["strategy"]] for value in expected), (r["strategy"], expected)
    text = flat(page)
    for split in ("validation_matched", "validation_mismatched"):
        pairs = {(p["better"], p["worse"]): p for p in pairwise(run, split)}
        assert len(pairs) == 28
        for (a, b), p in pairs.items():
            assert flat(f"{a} - {b}") in text and f"{p['difference']:+.1%}" in text
        for a, b in (
            ("odd", "bottom_k"),
            ("top_k", "random"),
            ("top_k", "pretrained-only"),
            ("top_k", "no-distillation"),
        ):
            p = pairs[(a, b)]
            assert f"{p['difference']:+.1%} [{p['low']:+.1%}, {p['high']:+.1%}]" in text, (split, a, b)


def test_scaling_measured():
    """The measured grid as `python -m bench.scaling` printed it: ten rows, the default job once in each axis."""
    from bench.scaling import GRID, print_measured

    r = bench("scaling")
    assert [(row["axis"], row["value"]) for row in r["measured"]] == [(axis, value) for axis, value, _ in GRID]
    default = [row["seconds"] for row in r["measured"] if row["value"] in (5000, 4, 3)]
    assert len(set(default)) == 1, "the default job is one run, shown once per axis"
    text = printed(print_measured, r["measured"], r["machine"])
    lines = table_lines(text) + [line for line in text.splitlines() if line.startswith("The default job")]
    assert len(lines) == 13
    assert_on_page(PERFORMANCE, lines, "python -m bench.scaling")
