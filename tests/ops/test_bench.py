"""``kfaar bench kernels``: the table says which targets hold; timings themselves are never
asserted in tests (they are judged from the printed figures)."""

from __future__ import annotations

from click.testing import CliRunner

from kfaar.ops.bench import Row, format_table, kernels, median_ms, medians_ms


def test_table_marks_targets_and_missing_cuda():
    rows = [
        Row("keyed projection", 1, "torch twin", 1.0, 0.02, None, 20.0),
        Row("fused mapping", 256, "torch eager", 1.0, 2.0, 0.5, 1.0),
        Row("scoring", 1, "torch twin", 1.0, 0.5, None, None),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].startswith("| kernel") and set(lines[1]) <= {"|", "-"}
    assert "| 50.0 " in lines[2] and "| yes |" in lines[2] and "| — " in lines[2]
    assert "| 0.5 " in lines[3] and "| 2.0 " in lines[3] and "| NO  |" in lines[3]
    assert lines[4].rstrip().endswith("|        |     |")


def test_median_ms_calls_warmup_then_repeats():
    calls = []
    assert median_ms(lambda: calls.append(1), 3) >= 0.0
    assert len(calls) == 2 * 5 + 3


def test_medians_time_blocks_there_and_back():
    calls = []
    medians_ms([lambda: calls.append("a"), lambda: calls.append("b")], 3)
    assert calls == ["a"] * (5 + 1) + ["b"] * (5 + 1) + ["b"] * (5 + 2) + ["a"] * (5 + 2)


def test_command_documents_its_options():
    result = CliRunner().invoke(kernels, ["--help"])
    assert result.exit_code == 0 and "--repeats" in result.output and "--json" in result.output
