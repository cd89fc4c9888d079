"""PartialState.split_between_processes: accelerate's split, for every small case."""

import numpy as np
import pytest

import paradiff
from paradiff import _native


def accelerate_split(inputs, processes, index, apply_padding):
    """accelerate 1.x's rule, written out from its documentation."""
    q, r = divmod(len(inputs), processes)
    start = index * q + min(index, r)
    result = list(inputs[start : start + q + (1 if index < r else 0)])
    if apply_padding:
        result += [inputs[-1]] * (q + (1 if r > 0 else 0) - len(result))
    return result


@pytest.mark.parametrize("apply_padding", [False, True])
def test_engine_split_equals_accelerate(apply_padding):
    for length in range(0 if not apply_padding else 1, 12):
        items = [f"p{i}" for i in range(length)]
        for processes in range(1, 6):
            for index in range(processes):
                got = _native._paradiff.split_between_processes(length, processes, index, apply_padding)
                assert [items[i] for i in got] == accelerate_split(items, processes, index, apply_padding)


def test_one_process_gets_everything():
    state = paradiff.PartialState()
    assert state.num_processes == 1 and state.process_index == 0 and state.is_main_process
    with state.split_between_processes(["a", "b", "c"]) as mine:
        assert mine == ["a", "b", "c"]
    state.wait_for_everyone()


def test_dict_and_array_inputs_keep_their_types(monkeypatch):
    state = paradiff.PartialState()
    monkeypatch.setattr(state, "num_processes", 2)
    monkeypatch.setattr(state, "process_index", 1)
    with state.split_between_processes({"prompt": ["a", "b", "c"], "seed": (1, 2, 3)}) as mine:
        assert mine == {"prompt": ["c"], "seed": (3,)}
    with state.split_between_processes(np.arange(5), apply_padding=True) as mine:
        assert isinstance(mine, np.ndarray) and mine.tolist() == [3, 4, 4]
    with pytest.raises(ValueError, match="same length"):
        with state.split_between_processes({"a": [1], "b": [1, 2]}):
            pass
    with pytest.raises(TypeError, match="not a str"):
        with state.split_between_processes("abc"):
            pass
