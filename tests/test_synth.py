from sltd import open_index
from sltd.synth import STATUS_WEIGHTS, synth_records


def test_synthetic_records_are_valid_unique_and_reproducible():
    a = synth_records(5000, seed=4)
    b = synth_records(5000, seed=4)
    assert a.equals(b)
    keys = set(zip(a.column("document_number").to_pylist(), a.column("document_type").to_pylist(),
                   a.column("issuing_country").to_pylist(), strict=True))
    assert len(keys) == 5000
    with open_index(":memory:", create=True) as ix:
        rep = ix.load(a)
    assert (rep.inserted, rep.rejected) == (5000, 0)


def test_synthetic_mix_is_realistic():
    t = synth_records(20000, seed=5)
    statuses = set(t.column("status").to_pylist())
    assert statuses == set(STATUS_WEIGHTS)
    countries = t.column("issuing_country").to_pylist()
    top = max(set(countries), key=countries.count)
    assert countries.count(top) > 10 * countries.count("NZL")  # skewed
    blanks = [i for i, s in enumerate(t.column("status").to_pylist()) if s == "stolen_blank"]
    issue = t.column("date_of_issue").to_pylist()
    assert all(issue[i] is None for i in blanks)
    assert 0 < sum(x is None for x in t.column("place_of_loss").to_pylist()) < len(t)
