"""``kfaar bench files`` runs its four ways on the same photos and prints one row each."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kfaar.cli import main


def test_bench_files_prints_every_way_with_its_ratio(tmp_path):
    out = tmp_path / "files.json"
    r = CliRunner().invoke(main, ["bench", "files", "--size", "sample", "--photos", "2", "--repeats", "1",
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["rows"]
    assert [row["way"] for row in rows] == ["one at a time, PNG 6", "one at a time, PNG 1", "overlapped, PNG 1",
                                            "overlapped, JPEG 95"]
    assert rows[0]["ratio"] == 1.0 and all(row["photos_s"] > 0 and row["photos"] == 2 for row in rows)
    # zlib level 6 writes fewer bytes than level 1 for the same pixels
    assert rows[0]["mb_per_result"] < rows[1]["mb_per_result"] == rows[2]["mb_per_result"]
    assert rows[3]["mb_per_result"] < rows[0]["mb_per_result"]  # JPEG: fewer bytes than any PNG
    assert "overlapped, PNG 1" in r.output
    bad = CliRunner().invoke(main, ["bench", "files", "--photos", "0"])
    assert bad.exit_code == 2 and "--photos" in bad.output
