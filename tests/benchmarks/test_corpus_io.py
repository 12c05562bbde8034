"""The corpus I/O benchmark at a tiny size: every storage measured, every field filled."""

import json

from benchmarks import corpus_io
from benchmarks.report import _table


def test_the_section_measures_every_storage_and_reuses_its_corpus(tmp_path):
    # in this process (a fresh process per storage costs 10-30 s of imports here) ...
    result = corpus_io.corpus_io(2.0, files=50, cache=tmp_path, batches=3, warmup=1, isolate=False)
    corpus = result["corpus"]
    assert not corpus["reused"] and corpus["files"] == 50
    assert set(corpus["write_s"]) == set(corpus_io.STORAGES)
    tsv = (tmp_path / "corpus-io-50" / "train.tsv").read_text().splitlines()
    assert len(tsv) == 51 and all(line.count("\t") == 1 for line in tsv[1:])
    shards = json.loads((tmp_path / "corpus-io-50" / "shards" / "shards.json").read_text())
    assert shards["items"] == 50  # written by `cpc data shard`, every file in it
    assert [r["storage"] for r in result["rows"]] == list(corpus_io.STORAGES)
    items = set()
    for row in result["rows"]:
        assert row["build_data_s"] > 0 and row["skipped"] == 0 and row["batch"] == 8
        assert row["main_peak_mb"] >= row["main_rss_before_mb"] > 0
        assert len(row["load_average"]) == 3
        items.add(row["items"])
        zero, two = (corpus_io._run_of(row, w) for w in (0, 2))
        for run in (zero, two):
            assert run["first_batch_s"] > 0 and run["batches"] >= 1
            assert run["batches_per_s"] > 0
            assert run["share_of_step"] == run["batch_s"] / 2.0
        assert zero["worker_memory"] == []
        assert len(two["worker_memory"]) == 2  # the preset's two workers, each measured
        assert all(m["peak_mb"] > 0 for m in two["worker_memory"])
    assert all(50 <= n <= 100 for n in items)  # 0.3-3 s files: 1 or 2 windows each
    target = corpus_io.target_row(result)
    assert target["target"] == "< 5%" and isinstance(target["met"], bool)
    text = "\n".join(corpus_io.markdown(result, _table))
    assert text.count("| folder |") == text.count("| fairseq |") == 1
    again = corpus_io.ensure_corpus(tmp_path, 50)
    assert again["reused"] and again["sources"] == corpus["sources"]
    # ... and once in a fresh process, as benchmarks.run measures
    alone = corpus_io._measure_in_subprocess(corpus["sources"]["fairseq"], 2, 0)
    assert alone["items"] == result["rows"][1]["items"]
    assert [len(r["worker_memory"]) for r in alone["runs"]] == [0, 2]
