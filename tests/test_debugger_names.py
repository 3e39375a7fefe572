"""The debugger's names mean the same for every cell (issue 28, section 3): `d<gate>` is the
gradient of that gate's pre-activation, for the gates the cell has, and the stacked gradient
of all of them is `dgates` in every cell. No traced name is d + a gate letter of another cell:
`show dz` used to be the LSTM's 4H block but the GRU's z gate, and `dg` the GRU's 3H block but
the LSTM's g gate."""
import numpy as np
import pytest

from minirnn.debug.explore import read_page
from minirnn.debug.stepper import run_session
from minirnn.debug.tracing import trace
from minirnn.cells import BUILTIN as CELL_NAMES
from minirnn.cells import CELLS
from minirnn.nn import make_recurrent

GATE_LETTERS = sorted({g for name in CELL_NAMES for g in CELLS[name].gate_names})


def _trace(cell, T=4, B=2, H=3, seed=0):
    model = make_recurrent(cell, 2, H, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, 2))
    return trace(model, x, d_out=rng.standard_normal((T, B, H)))


def _arrays(rec):
    return {k for k, v in vars(rec).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_gate_letter_names_that_gate_only(cell):
    tr = _trace(cell)
    spec = tr.spec
    rec = tr.step(1)
    own = {f"d{g}" for g in spec.gate_names}
    clash = {f"d{g}" for g in GATE_LETTERS} & _arrays(rec)
    assert clash == own, f"{cell}: {sorted(clash - own)} name no gate of this cell"
    H = rec.h.shape[1]
    for g in spec.gate_names:
        assert getattr(rec, f"d{g}").shape == (2, H), g


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_dgates_is_the_stacked_gate_gradient_in_every_cell(cell):
    tr = _trace(cell)
    spec = tr.spec
    for t in range(tr.T):
        rec = tr.step(t)
        stacked = np.concatenate([getattr(rec, f"d{g}") for g in spec.gate_names], axis=-1)
        assert np.array_equal(rec.dgates, stacked)
    series = tr.series("dgates")
    assert series.shape == (tr.T, 2, spec.gates * 3)
    assert np.array_equal(series[2], tr.step(2).dgates)


def test_show_dz_is_the_grus_z_gate_and_unknown_to_the_lstm():
    gru = _trace("gru")
    out = run_session(gru, "backward\nshow dz\nquit\n")
    shown = [line for line in out.splitlines() if line.startswith("dz[")]
    assert len(shown) == 1 and shown[0].startswith("dz[0:3]"), out
    t = gru.T - 1
    np.testing.assert_allclose([float(v) for v in shown[0].split()[1:]], gru.step(t).dz[0],
                               atol=5e-4)
    lstm = _trace("lstm")
    out = run_session(lstm, "backward\nshow dz\nshow dg\nquit\n")
    assert "error: show: expected one of" in out and "'dz'" in out
    assert sum(line.startswith("dg[0:3]") for line in out.splitlines()) == 1   # the g gate


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_show_dgates_lists_every_gate_of_the_cell(cell):
    tr = _trace(cell)
    out = run_session(tr, "backward\nshow dgates\nquit\n")
    labels = [line.split("[")[0] for line in out.splitlines()
              if line.split("[")[0] in {f"d{g}" for g in GATE_LETTERS}]
    assert labels == [f"d{g}" for g in tr.spec.gate_names], out


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_explorer_page_uses_the_same_names(cell, tmp_path):
    import minirnn
    model = make_recurrent(cell, 2, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2))
    page = read_page(minirnn.explore(model, x, tmp_path / "p.html", connect=False))
    spec = model.spec
    assert page["meta"]["bvars"] == ["dh", *(["dc"] if spec.has_cell_state else []),
                                     *(f"d{g}" for g in spec.gate_names)]
    names = {k.split(":", 1)[1] for k in page["arrays"] if k[0].isdigit()}
    assert {f"d{g}" for g in GATE_LETTERS} & names == {f"d{g}" for g in spec.gate_names}
