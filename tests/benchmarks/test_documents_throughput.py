"""The document-tools benchmark runs and reports pages/s for both import paths (teacher part: slow tests)."""

import json

from documents_throughput import main


def test_import_part_reports_rates(capsys, tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("<!-- table:documents_throughput -->\n<!-- /table:documents_throughput -->\n")
    args = ["--documents", "3", "--dpi", "30", "--workers", "2", "--skip-teacher", "--readme", str(readme)]
    assert main(args) == 0
    out = capsys.readouterr().out
    result = json.loads(out[: out.index("\n| step |")])
    assert "| PDF import, 2 render processes | " in readme.read_text()
    assert result["machine"] and "teacher" not in result
    one, two = result["import"]["one_process"], result["import"]["2_processes"]
    assert one["pages"] == two["pages"] >= 3 and one["pages_per_s"] > 0 and two["pages_per_s"] > 0
    assert result["import"]["speedup"] == round(two["pages_per_s"] / one["pages_per_s"], 2)
