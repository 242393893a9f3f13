import importlib
import inspect
import pkgutil

import sltd

MODULES = sorted(m.name for m in pkgutil.iter_modules(sltd.__path__))


def test_all_is_sorted_and_matches_public_names():
    assert sltd.__all__ == sorted(sltd.__all__)
    public = {n for n in dir(sltd) if not n.startswith("_")}
    assert set(sltd.__all__) == public - set(MODULES)


def test_every_exception_of_every_module_derives_from_sltd_error():
    found = []
    for name in MODULES:
        module = importlib.import_module(f"sltd.{name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("sltd"):
                found.append(cls)
                assert issubclass(cls, sltd.SltdError), cls
    assert sltd.DeliveryError in found
    assert sltd.IndexBusy in found


def test_every_error_is_exported():
    from sltd import errors

    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, sltd.SltdError):
            assert name in sltd.__all__
