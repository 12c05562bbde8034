"""Per-machine results files: names, merging of partial runs, the combined table."""

from benchmarks.machines import combined, machine_key, merge, slug


def _run(date, cpu="AMD EPYC", **sections):
    machine = {
        "date": date,
        "command": "python -m benchmarks.run",
        "cpu_model": cpu,
        "device": "cpu",
        "cpu_count": 2,
        "cpu_flags": [],
        "load_average_start": [1.0],
    }
    ceilings = {"float32": {"gflops_median": 100.0}}
    run = {"machine": machine, "ceilings": ceilings, **sections}
    run["sections"] = {k: {"date": date} for k in sections}
    return run


def test_machine_kinds_are_named_by_their_cpu_or_gpu():
    assert slug("Intel(R) Xeon(R) Platinum 8488C") == "intel-xeon-platinum-8488c"
    assert slug("AMD EPYC 7R13 Processor") == "amd-epyc-7r13"
    assert machine_key({"device": "cuda:0", "gpu": "NVIDIA H200", "cpu_model": "x"}) == (
        "nvidia-h200"
    )
    assert machine_key({"device": "cpu", "cpu_model": "AMD EPYC"}) == "amd-epyc"
    # one VM name, two machine kinds: the SIMD level torch runs at tells them apart
    avx2 = {"device": "cpu", "cpu_model": "AMD EPYC", "cpu_capability": "AVX2"}
    avx512 = {**avx2, "cpu_capability": "AVX512"}
    assert (machine_key(avx2), machine_key(avx512)) == ("amd-epyc-avx2", "amd-epyc-avx512")


def test_a_partial_run_replaces_only_its_sections():
    old = _run("day 1", steps=[{"workload": "paper", "x": 1}, {"workload": "small", "x": 2}],
               core={"c": 1})  # fmt: skip
    new = _run("day 2", steps=[{"workload": "paper", "x": 3}], loop={"rows": []})
    merged = merge(old, new)
    assert merged["core"] == {"c": 1} and merged["sections"]["core"]["date"] == "day 1"
    assert merged["loop"] == {"rows": []} and merged["sections"]["loop"]["date"] == "day 2"
    assert [(r["workload"], r["x"]) for r in merged["steps"]] == [("paper", 3), ("small", 2)]
    assert merged["machine"]["date"] == "day 2"


def test_the_combined_table_has_one_column_per_machine():
    text = combined({"amd-epyc": _run("d"), "intel-xeon": _run("d", cpu="Intel Xeon")})
    header = next(line for line in text.splitlines() if line.startswith("| |"))
    assert "[amd-epyc](amd-epyc.md)" in header and "[intel-xeon](intel-xeon.md)" in header
    assert "| CPU | AMD EPYC, 2 cores | Intel Xeon, 2 cores |" in text
