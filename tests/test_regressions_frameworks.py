"""Gradient bugs that shipped in real frameworks, rebuilt as tests on minirnn.

pytorch#11662 "Wrong gradient in RNNCell with ReLU?" (2018, fixed): nn.RNNCell + ReLU (any
device) and nn.RNN + ReLU on CPU returned wrong gradients -- the same loss, but the "sum of
gradient norms" of a model built from nn.RNNCell steps and of nn.RNN differed (22.8 against
44.0 in the report); LSTM and GRU were fine. Rebuilt: a ReLU Elman RNN as the sequence
module and as a loop of one-step cells, same weights, same MSE loss, on both backends; both
gradients must equal each other, torch's (module and cell loop), central differences and,
for second order, torch's double backward through its cell loop.

mxnet#21143 "Gradient calculation for recurrent operators is wrong" (2022, open): an RNN
operator (rnn_tanh, batch 1, 5 steps, input size 2, state size 3, every tensor uniform in
[0, 1)) whose input gradient, for the head gradient all ones, was inspected at each fixed
position for sequence lengths 1..5. Only the opening of the thread could be read here (the
script; not the values it printed nor the diagnosis), so the test asserts the invariants
that configuration must satisfy: the gradient at every position and length equals torch's and
central differences; growing the sequence by one step adds exactly the new output's
contribution to each earlier position; the last position sees only its own output; one
padded batch with lengths 1..5 gives the five gradients at once; and forward mode agrees.
"""
import numpy as np
import pytest

import minirnn
from minirnn.grad import MSELoss, hvp, jvp
from minirnn.nn import make_recurrent

torch = pytest.importorskip("torch")


def _rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b))


# ---- pytorch#11662 ---------------------------------------------------------------------------

def _cell_loop_grads(cell, x, h0, target):
    """BPTT through a loop of one-step cells: forward to store the states, then back in time,
    re-running each step so that the cell's backward sees that step's record."""
    cell.zero_grad()
    hs = [h0]
    for t in range(x.shape[0]):
        hs.append(cell(x[t], hs[-1]))
    out = np.stack(hs[1:])
    d_out = 2.0 * (out - target) / out.size                      # MSE
    dh, dx = np.zeros_like(h0), np.zeros_like(x)
    for t in reversed(range(x.shape[0])):
        cell(x[t], hs[t])
        dx[t], dh = cell.backward(dh + d_out[t])
    return out, dx, dh, cell.grad_dict()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pytorch_11662_relu_cell_loop_and_sequence_module_agree(backend):
    rng = np.random.default_rng(11662)
    T, B, I, H = 8, 4, 5, 10
    rnn = minirnn.RNN(I, H, nonlinearity="relu", seed=1, backend=backend)
    cell = minirnn.RNNCell(I, H, nonlinearity="relu", backend=backend)
    cell.load_state_dict({k[:-3]: v for k, v in rnn.state_dict().items()})
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H))
    target = rng.standard_normal((T, B, H))
    # the ReLU mask must matter: a good share of pre-activations on each side of 0
    rnn(x, h0[None])
    negative = float(np.mean(rnn.last_caches[0].a < 0))
    assert 0.2 < negative < 0.8, negative

    rnn.zero_grad()
    out, _ = rnn(x, h0[None])
    loss = MSELoss(target)
    dx, dh0 = rnn.backward(loss.grad(out))
    module = {k[:-3]: g for k, g in rnn.grad_dict().items()}
    out_c, dx_c, dh0_c, loop = _cell_loop_grads(cell, x, h0, target)
    np.testing.assert_allclose(out_c, out, rtol=0, atol=1e-15)

    # torch (fixed since), the same two constructions
    t_rnn = torch.nn.RNN(I, H, nonlinearity="relu", dtype=torch.float64)
    t_rnn.load_state_dict({k: torch.from_numpy(v) for k, v in rnn.state_dict().items()})
    t_cell = torch.nn.RNNCell(I, H, nonlinearity="relu", dtype=torch.float64)
    t_cell.load_state_dict({k: torch.from_numpy(v) for k, v in cell.state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_(True)
    ht = torch.from_numpy(h0).requires_grad_(True)
    o, _ = t_rnn(xt, ht[None])
    torch.nn.functional.mse_loss(o, torch.from_numpy(target)).backward()
    h, outs = ht, []
    for t in range(T):
        h = t_cell(xt[t], h)
        outs.append(h)
    xt2 = xt.grad.clone()
    xt.grad = None
    torch.nn.functional.mse_loss(torch.stack(outs), torch.from_numpy(target)).backward()
    t_module = {k[:-3]: p.grad.numpy() for k, p in t_rnn.named_parameters()}
    t_loop = {k: p.grad.numpy() for k, p in t_cell.named_parameters()}
    for k in module:
        for got in (module[k], loop[k], t_loop[k]):
            assert _rel(got, t_module[k]) <= 1e-12, k
    for got in (dx, dx_c):
        assert _rel(got, xt2.numpy()) <= 1e-12 and _rel(got, xt.grad.numpy()) <= 1e-12
    assert _rel(dh0_c, dh0[0]) <= 1e-12
    # the report's own diagnostic: the sum of gradient norms is one number for both
    norms = [sum(np.linalg.norm(g) for g in grads.values()) for grads in (module, loop)]
    assert norms[0] == pytest.approx(norms[1], rel=1e-13)
    # and both against central differences (the module's own forward)
    report = minirnn.gradcheck(rnn, x, h0[None], max_entries=15)
    assert report.passed, report.table()


def test_pytorch_11662_relu_second_order_matches_torch_cell_loop():
    """relu'' = 0, but the mask still shapes the curvature: the HVP of the ReLU RNN equals
    torch's double backward through its RNNCell loop."""
    rng = np.random.default_rng(11663)
    T, B, I, H = 6, 3, 4, 6
    rnn = minirnn.RNN(I, H, nonlinearity="relu", seed=2).eval()
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((1, B, H))
    target = rng.standard_normal((T, B, H))
    v = {k: rng.standard_normal(p.shape) for k, p in rnn.params.items()}
    hv = hvp(rnn, x, MSELoss(target), v, state=(h0,))
    t_cell = torch.nn.RNNCell(I, H, nonlinearity="relu", dtype=torch.float64)
    t_cell.load_state_dict({k[:-3]: torch.from_numpy(p) for k, p in rnn.state_dict().items()})
    params = list(t_cell.parameters())
    h, outs = torch.from_numpy(h0[0]), []
    for t in range(T):
        h = t_cell(torch.from_numpy(x[t]), h)
        outs.append(h)
    loss = torch.nn.functional.mse_loss(torch.stack(outs), torch.from_numpy(target))
    g = torch.autograd.grad(loss, params, create_graph=True)
    names = [n for n, _ in t_cell.named_parameters()]
    s = sum((a * torch.from_numpy(v[n + "_l0"])).sum() for a, n in zip(g, names))
    for n, want in zip(names, torch.autograd.grad(s, params)):
        assert _rel(hv[n + "_l0"], want.numpy()) <= 1e-10, n


# ---- mxnet#21143 -----------------------------------------------------------------------------

def _mxnet_21143_setup(cell, rng):
    """The thread's configuration: batch 1, data_len 5, input 2, state 3, all in [0, 1)."""
    model = make_recurrent(cell, 2, 3)
    for p in model.params.values():
        p[...] = rng.uniform(size=p.shape)
    data = rng.uniform(size=(5, 1, 2))
    state = tuple(rng.uniform(size=(1, 1, 3)) for _ in model.spec.state_names)
    return model, data, state


def _input_grad(model, x, state, lengths=None, head=None):
    out, _ = model.forward_state(x, state, lengths)
    dx, _ = model.backward_state(np.ones_like(out) if head is None else head)
    return dx


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_mxnet_21143_input_gradient_at_each_position_for_lengths_1_to_5(cell):
    rng = np.random.default_rng(21143)
    model, data, state = _mxnet_21143_setup(cell, rng)
    grads = {L: _input_grad(model, data[:L], state)[:, 0] for L in range(1, 6)}   # (L, 2)

    t = getattr(torch.nn, model.spec.module)(2, 3, dtype=torch.float64,
                                              **model.spec.module_kwargs())
    t.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    for L, g in grads.items():
        xt = torch.from_numpy(data[:L].copy()).requires_grad_(True)
        hx = tuple(torch.from_numpy(s) for s in state)
        out, _ = t(xt, hx[0] if len(hx) == 1 else hx)
        out.backward(torch.ones_like(out))                        # head_grads = ones
        assert _rel(g, xt.grad.numpy()[:, 0]) <= 1e-12, L
        report = minirnn.gradcheck(model, data[:L], model.state_value(state), params=["x"])
        assert report.passed, report.table()

    # growing the sequence by one step adds exactly the new output's contribution
    for L in range(2, 6):
        head = np.zeros((L, 1, 3))
        head[L - 1] = 1.0
        new_output = _input_grad(model, data[:L], state, head=head)[:, 0]
        np.testing.assert_allclose(grads[L][:L - 1], grads[L - 1] + new_output[:L - 1],
                                   rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(grads[L][L - 1], new_output[L - 1], rtol=1e-13, atol=1e-15)
    if cell == "rnn_tanh":                     # the last position: W_ih^T (1 - h^2) 1, no more
        for L in range(1, 6):
            out, _ = model.forward_state(data[:L], state)
            h = out[L - 1, 0]
            np.testing.assert_allclose(grads[L][L - 1], (1 - h * h) @ model.params["weight_ih_l0"],
                                       rtol=1e-13)

    # one padded batch, lengths 1..5 side by side, gives the five gradients at once
    batch = np.repeat(data, 5, axis=1)
    many = tuple(np.repeat(s, 5, axis=1) for s in state)
    dx = _input_grad(model, batch, many, lengths=[1, 2, 3, 4, 5])
    for L in range(1, 6):
        np.testing.assert_allclose(dx[:L, L - 1], grads[L], rtol=1e-13, atol=1e-15)
        assert not np.any(dx[L:, L - 1])                          # padding gets nothing

    # forward mode: column j of the Jacobian, summed over the outputs, is the gradient's entry
    for L in (1, 5):
        for j in np.ndindex(L, 2):
            e = np.zeros((L, 1, 2))
            e[j[0], 0, j[1]] = 1.0
            col = jvp(model, data[:L], state, {"x": e}).out_dot
            assert col.sum() == pytest.approx(grads[L][j], rel=1e-12, abs=1e-15)
