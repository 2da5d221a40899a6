"""The docs' benchmark figures are rendered from the committed bench results, not typed."""

import json
import shutil

from bench.report import BLOCKS, ROOT, render_docs, stale_blocks


def test_every_rendered_block_matches_its_committed_results():
    assert stale_blocks() == [], "run `python -m bench.report` after a benchmark and commit both"


def test_a_typed_figure_is_found_and_rendered_back(tmp_path):
    for block in {block.doc for block in BLOCKS}:
        (tmp_path / block).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / block, tmp_path / block)
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    sync = tmp_path / "bench" / "results" / "sync_hubspot.json"
    result = json.loads(sync.read_text())
    result["runs"][0]["calls"] += 12345
    sync.write_text(json.dumps(result))

    assert stale_blocks(tmp_path) == ["docs/benchmarks.md: sync-throughput"]
    assert render_docs(tmp_path) == 0
    assert stale_blocks(tmp_path) == []
    assert f"| {result['runs'][0]['calls']:,} |" in (tmp_path / "docs/benchmarks.md").read_text()
