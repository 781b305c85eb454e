"""The document-tools benchmark runs and reports pages/s for both import paths (teacher part: slow tests)."""

import json

from documents_throughput import main


def test_import_part_reports_rates(capsys) -> None:
    assert main(["--documents", "3", "--dpi", "30", "--workers", "2", "--skip-teacher"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["machine"] and "teacher" not in result
    one, two = result["import"]["one_process"], result["import"]["2_processes"]
    assert one["pages"] == two["pages"] >= 3 and one["pages_per_s"] > 0 and two["pages_per_s"] > 0
    assert result["import"]["speedup"] == round(two["pages_per_s"] / one["pages_per_s"], 2)
