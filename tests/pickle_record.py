"""What Python's own unpickler imports from a pickle, without importing or running anything.

The C unpickler runs on the data, but ``find_class`` records ``(module, name)`` and hands back a stub whose calls,
items and state do nothing: the reference the kit's scanner (tests/supply_chain) and set 15's checks
(tests/grading/test_ch15.py) are compared with."""
import io
import pickle


class _Stub:
    """Stands in for every global and persistent id: building, calling, filling it or setting its state does
    nothing, so no code the pickle names ever runs."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Stub()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


class _Recorder(pickle.Unpickler):
    def __init__(self, stream, seen):
        super().__init__(stream)
        self.seen = seen

    def find_class(self, module, name):
        self.seen.append((module, name))
        return _Stub

    def persistent_load(self, pid):
        return _Stub()


def unpickler_imports(data: bytes) -> list:
    """Every ``(module, name)`` the unpickler asks ``find_class`` for, in order, over every pickle in ``data``
    (one after another, as repeated ``pickle.load`` calls on one stream read them)."""
    stream, seen = io.BytesIO(data), []
    while stream.tell() < len(data):
        _Recorder(stream, seen).load()
    return seen
