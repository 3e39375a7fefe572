"""The smaller things a new user hit (issue 28, section 5): one overwrite rule for every page
and picture the debugger writes, --weight-scale refusing a non-finite factor, train hihell's
--resume message, `dir(minirnn.grad)`, the Lyapunov study's overflow text, the lag study's
test loss at init, the CLI telling a bug from bad input, and torch's forward-mode AD loading
without TorchScript warnings."""
import csv
import re

import numpy as np
import pytest

import minirnn
from minirnn.cli import main


# ---- the lag study's init rows have their test loss ---------------------------------------------
def test_lags_study_reports_the_test_loss_at_init_too(tmp_path, capsys):
    from minirnn.grad.seqtask import cross_entropy_on_task, task_model
    assert main(["study", "lags", "--cells", "gru", "--T", "6", "--hidden", "3", "--batch", "2",
                 "--train-steps", "16", "--window", "4", "--seed", "2",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split() for line in out.splitlines()
            if line.startswith("gru ") and line.split()[1] in ("init", "trained")}
    assert set(rows) == {"init", "trained"}, out
    want = cross_entropy_on_task(task_model(3, "gru", 2, "numpy"), seed=4)   # same data, untrained
    assert float(rows["init"][2]) == pytest.approx(want, abs=5e-5)
    assert float(rows["trained"][2]) != float(rows["init"][2])


# ---- the Lyapunov study says what README says ------------------------------------------------
def test_lyapunov_study_reports_a_state_overflow_as_readme_does(tmp_path, capsys):
    from minirnn.grad.flow import scale_recurrent
    from minirnn.grad.lyapunov import lyapunov_spectrum
    from minirnn.registry import make_recurrent
    args = ["--cells", "rnn_relu", "--hidden", "8", "--input-size", "4", "--T", "300",
            "--warmup", "20", "--weight-scale", "1000", "--fixed-T", "20", "--readout-steps", "0",
            "--seed", "0"]
    assert main(["study", "lyapunov", *args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    m = scale_recurrent(make_recurrent("rnn_relu", 4, 8, seed=0), 1000.0)
    x = np.random.default_rng(0).standard_normal((300, 1, 4))
    step = lyapunov_spectrum(m, x, warmup=20, seed=0).diverged_at
    assert step is not None
    assert f"state overflow (step {step})" in out and "diverged at" not in out, out
    assert "not compared on any of 1 runs (1 state overflow: not compared)" in out
