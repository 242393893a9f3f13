import sltd


def test_all_is_sorted_and_matches_public_names():
    assert sltd.__all__ == sorted(sltd.__all__)
    public = {n for n in dir(sltd) if not n.startswith("_")}
    modules = {"clock", "codes", "errors", "index", "keyset", "model", "normalize", "search",
               "sources", "store", "synth", "cli", "demo", "mrz", "workflow", "alerts", "screen",
               "audit"}
    assert set(sltd.__all__) == public - modules


def test_every_exception_derives_from_sltd_error():
    import inspect

    from sltd import errors

    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, Exception) and cls.__module__ == "sltd.errors":
            assert issubclass(cls, sltd.SltdError)
