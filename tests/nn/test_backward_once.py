"""torch's rule: a forward's record serves one backward. A second backward of the same forward
would add the same gradients to model.grads again (exactly 2x), so it is refused with the fix
named, unless the first asked to keep the record (retain_graph=True, as torch's)."""
from __future__ import annotations

import numpy as np
import pytest

import minirnn
from minirnn.testing import assert_close

SECOND = "backward\\(\\) a second time on the same forward.*retain_graph=True"


@pytest.mark.parametrize("make", [lambda: minirnn.LSTM(3, 4, num_layers=2, seed=0),
                                  lambda: minirnn.GRU(3, 4, seed=0, backend="numba")])
def test_a_second_backward_is_refused_and_grads_are_not_doubled(make):
    m = make()
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out, _ = m(x)
    m.backward(np.ones_like(out))
    once = {k: g.copy() for k, g in m.grads.items()}
    with pytest.raises(RuntimeError, match=SECOND):
        m.backward(np.ones_like(out))
    with pytest.raises(RuntimeError, match=SECOND):
        m.backward_state(np.ones_like(out))
    for k, g in m.grads.items():
        assert np.array_equal(g, once[k]), k                 # untouched by the refusals
    out, _ = m(x)                                            # a new forward: a new record
    m.backward(np.ones_like(out))
    for k, g in m.grads.items():
        assert_close(g, 2 * once[k], rtol=1e-13, name=k)


def test_retain_graph_keeps_the_record_for_one_more():
    m = minirnn.RNN(3, 4, seed=0)
    x = np.random.default_rng(1).standard_normal((5, 2, 3))
    out, _ = m(x)
    m.backward(np.ones_like(out), retain_graph=True)
    first = {k: g.copy() for k, g in m.grads.items()}
    m.backward(np.ones_like(out))                            # allowed: the first kept it
    for k, g in m.grads.items():
        assert_close(g, 2 * first[k], rtol=1e-13, name=k)
    with pytest.raises(RuntimeError, match=SECOND):
        m.backward(np.ones_like(out))
    out, _ = m(x)                                            # the uniform API, the same rule
    m.backward_state(np.ones_like(out), retain_graph=True)
    m.backward_state(np.ones_like(out), retain_graph=False)
    with pytest.raises(RuntimeError, match=SECOND):
        m.backward_state(np.ones_like(out))
    assert m.last_forward.freed
    with pytest.raises(TypeError, match="retain_graph"):
        m(x)
        m.backward(np.ones_like(out), retain_graph="yes")


@pytest.mark.parametrize("make", [lambda: minirnn.LSTMCell(3, 4, seed=0),
                                  lambda: minirnn.GRUCell(3, 4, seed=0)])
def test_the_one_step_cells_follow_the_same_rule(make):
    cell = make()
    x = np.ones((2, 3))
    new = cell(x)
    d = (np.ones((2, 4)),) if isinstance(new, np.ndarray) else (np.ones((2, 4)), None)
    cell.backward(*d, retain_graph=True)
    cell.backward(*d)
    with pytest.raises(RuntimeError, match=SECOND):
        cell.backward(*d)


def test_probing_tools_leave_the_callers_backward_available():
    """gradcheck, jvp and per-sample gradients run their own forwards and backwards; the
    caller's record is still there, unused, for its own backward."""
    m = minirnn.LSTM(3, 4, seed=0)
    x = np.random.default_rng(2).standard_normal((4, 2, 3))
    out, _ = m(x)
    minirnn.gradcheck(m, x)
    minirnn.grad.jvp(m, x)
    minirnn.grad.per_sample_gradients(m, x, np.ones_like(out))
    m.backward(np.ones_like(out))
