"""Every public callable, and each of its optional arguments, has a test (issue 20).

The public API is enumerated, not listed by hand: the names in ``minirnn.__all__``,
``minirnn.functional.__all__`` (with the public functions and classes of the reference
modules rnn, lstm, gru), ``minirnn.utils.__all__`` and ``minirnn.nn.__all__``; for each class
its constructor and its public methods and properties. CASES below maps every such callable to
its optional arguments (those with a default), and each argument to the test that passes it.
So the list cannot rot:
  * a new public callable, or a new optional argument, without an entry fails
    test_every_public_callable_is_registered;
  * an entry must name a test that exists and whose source (decorators, docstring and body)
    names the argument: test_each_case_names_a_test_that_passes_it.
The tests named here compare each result with a second path (torch, the module path, explicit
zeros, the reference); see tests/test_api_optional_*.py.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from functools import lru_cache
from pathlib import Path

import minirnn

ROOT = Path(__file__).resolve().parent.parent
CORE = "tests/test_api_optional_core.py::"
TORCH = "tests/test_api_optional_torch.py::"
TOOLS = "tests/test_api_optional_tools.py::"
TRAIN = "tests/test_api_optional_train.py::"
FUNCTIONAL = CORE + "test_functional_layer_is_the_one_layer_module"
STEPS = CORE + "test_reference_steps_are_the_sequence_at_one_step"
MODULE = TORCH + "test_module_matches_torch_autograd"
CELL = TORCH + "test_cell_matches_torch_autograd"
METHODS = TOOLS + "test_module_methods"
LAYERS = TOOLS + "test_layers_dtype_and_defaults"
TRACE_VIEWS = TOOLS + "test_trace_views_layer_direction_phase_pandas"
ENGINE = TRAIN + "test_engine_defaults_predict_lengths_save_and_load"
LM = TRAIN + "test_engine_ignore_index_and_predict_lm_state"
EXPLORE = TRAIN + "test_explore_hx_token_level_and_default_path"
TRACING = "tests/test_tracing.py::"
GRADCHECK = "tests/test_gradcheck.py::"
OPTIM = "tests/test_train_optim.py::"
RTRL_STEP = "tests/test_rtrl.py::test_reference_step_jacobians_optional_arguments"
JVP_SEQ = "tests/test_forward_mode.py::test_reference_forward_jvp_each_tangent_alone"
JVP_STEP = "tests/test_forward_mode.py::test_reference_step_jvp_is_the_sequence_at_one_step"
RBACK = "tests/test_second_order.py::test_reference_backward_jvp_arguments"
MODES = "tests/test_gradcheck_modes.py::test_gradcheck_mode_arguments_and_refusals"


def each(test, names):
    """{argument: test} for the space-separated argument names."""
    return dict.fromkeys(names.split(), test)


REC = "minirnn.nn.recurrent."
ONCE = "tests/nn/test_backward_once.py::"
ONCE_CELLS = ONCE + "test_the_one_step_cells_follow_the_same_rule"
CONTRACT = "tests/cells/test_contract.py::test_contract_optional_arguments"
CUSTOM = "tests/cells/test_custom_cell.py::"
SPEC, FAM = "minirnn.cells.spec.CellSpec.", "minirnn.cells.family.FamilySpec."
CASES = {
    # ---- the cell contract and the registry (issue 29) -------------------------------------
    "minirnn.cells.spec.CellSpec": {},
    **{SPEC + m: {} for m in ("add_twin", "backends", "states_of", "gates", "has", "has_cell_state",
                              "module_kwargs", "require", "split_gates", "step_forward",
                              "supports_proj", "twin")},
    SPEC + "forward": each(CONTRACT, "valid backend"),
    SPEC + "backward": each(CONTRACT, "return_steps input_grad backend per_sample"),
    SPEC + "forward_jvp": each(CONTRACT, "backend"),
    SPEC + "backward_jvp": each(CONTRACT, "input_grad backend"),
    SPEC + "step_jacobians": each(CONTRACT, "backend"),
    SPEC + "step_backward": each(CONTRACT, "per_sample"),
    SPEC + "param_shapes": each(CONTRACT, "proj_size"),
    SPEC + "state_sizes": each(CONTRACT, "proj_size"),
    "minirnn.cells.family.FamilySpec": {},
    **{FAM + m: {} for m in ("args", "extra_grads", "states_of", "has", "hidden_dgates", "per_sample_grads",
                             "tier")},
    FAM + "forward": each(CONTRACT, "valid backend"),
    FAM + "backward": each(CONTRACT, "return_steps input_grad backend per_sample"),
    FAM + "forward_jvp": each(CONTRACT, "backend"),
    FAM + "backward_jvp": each(CONTRACT, "input_grad backend"),
    FAM + "step_jacobians": each(CONTRACT, "backend"),
    "minirnn.cells.family.Tier": each(CONTRACT, "step_jacobians rtrl_step"),
    "minirnn.cells.family.linear_step_grads": each(CONTRACT, "per_sample"),
    **{f"minirnn.cells.{f}.{c}": {} for f, c in (
        ("rnn", "ElmanSpec"), ("lstm", "LSTMSpec"), ("gru", "GRUSpec"),
        ("rnn", "RNNStepCache"), ("lstm", "LSTMStepCache"), ("gru", "GRUStepCache"),
        ("lstm", "LSTMSpec.extra_grads"), ("gru", "GRUSpec.hidden_dgates"))},
    **{f"minirnn.cells.{f}.{c}.step_forward": {} for f, c in (
        ("rnn", "ElmanSpec"), ("lstm", "LSTMSpec"), ("gru", "GRUSpec"))},
    **{f"minirnn.cells.{f}.{c}.step_backward": each(CONTRACT, "per_sample") for f, c in (
        ("rnn", "ElmanSpec"), ("lstm", "LSTMSpec"), ("gru", "GRUSpec"))},
    "minirnn.cells.spec.StepsCache": {},
    **{f"minirnn.cells.spec.StepsCache.{m}": {} for m in ("gates", "h", "h0")},
    "minirnn.cells.spec.StepsGrad": {},
    "minirnn.cells.spec.StepsTangentCache": {},
    "minirnn.cells.registry.register_cell": each(CONTRACT, "replace"),
    **{f"minirnn.cells.registry.{f}": {} for f in ("register_tier", "unregister_cell",
                                                   "get_cell", "cell_name", "cell_names")},
    "minirnn.nn.recurrent.make_recurrent": {},
    "minirnn.nn.cells.make_cell": {},
    REC + "RNNBase.stack": each(CONTRACT, "lengths masks"),
    # ---- the functional API and the backend protocol -------------------------------------
    "minirnn.functional.rnn_forward": each(FUNCTIONAL, "b_ih b_hh nonlinearity lengths backend"),
    "minirnn.functional.rnn_backward": each(FUNCTIONAL, "d_hT backend return_steps input_grad"),
    "minirnn.functional.lstm_forward": each(FUNCTIONAL, "b_ih b_hh w_hr lengths backend"),
    "minirnn.functional.lstm_backward": each(FUNCTIONAL, "d_hT d_cT backend return_steps input_grad"),
    "minirnn.functional.gru_forward": each(FUNCTIONAL, "b_ih b_hh lengths backend"),
    "minirnn.functional.gru_backward": each(FUNCTIONAL, "d_hT backend return_steps input_grad"),
    "minirnn.functional.backends.Backend": {},
    "minirnn.functional.backends.Backend.forward": each(FUNCTIONAL, "valid"),
    "minirnn.functional.backends.Backend.backward": each(FUNCTIONAL, "return_steps input_grad"),
    "minirnn.functional.backends.get_backend": {},
    # the reference modules (the spec): the validating functions above dispatch to them
    "minirnn.cells.rnn.forward": each(FUNCTIONAL, "b_ih b_hh nonlinearity valid"),
    "minirnn.cells.rnn.backward": each(FUNCTIONAL, "d_hT return_steps input_grad"),
    "minirnn.cells.rnn.step_forward": each(STEPS, "b_ih b_hh nonlinearity"),
    "minirnn.cells.rnn.step_backward": each(STEPS, "nonlinearity"),
    "minirnn.cells.lstm.forward": each(FUNCTIONAL, "b_ih b_hh w_hr valid"),
    "minirnn.cells.lstm.backward": each(FUNCTIONAL, "d_hT d_cT return_steps input_grad"),
    "minirnn.cells.lstm.step_forward": each(STEPS, "b_ih b_hh w_hr"),
    "minirnn.cells.lstm.step_backward": each(STEPS, "w_hr"),
    "minirnn.cells.lstm.sigmoid": {},
    "minirnn.cells.lstm.split_gates": {},
    "minirnn.cells.gru.forward": each(FUNCTIONAL, "b_ih b_hh valid"),
    "minirnn.cells.gru.backward": each(FUNCTIONAL, "d_hT return_steps input_grad"),
    "minirnn.cells.gru.step_forward": each(STEPS, "b_ih b_hh"),
    "minirnn.cells.gru.step_backward": {},
    "minirnn.cells.gru.split_gates": {},
    "minirnn.cells.gru.hidden_side_grad": {},
    # RTRL's step Jacobians (issue 21), against torch autograd
    "minirnn.cells.rnn.step_jacobians": each(RTRL_STEP, "b_ih b_hh nonlinearity"),
    "minirnn.cells.lstm.step_jacobians": each(RTRL_STEP, "b_ih b_hh w_hr"),
    "minirnn.cells.gru.step_jacobians": each(RTRL_STEP, "b_ih b_hh"),
    # forward mode and the tangent of the backward (issue 21), against torch
    "minirnn.cells.rnn.forward_jvp": each(JVP_SEQ, "x_dot h0_dot w_ih_dot w_hh_dot "
                                                        "b_ih_dot b_hh_dot"),
    "minirnn.cells.lstm.forward_jvp": each(JVP_SEQ, "x_dot h0_dot c0_dot w_ih_dot "
                                                         "w_hh_dot b_ih_dot b_hh_dot w_hr_dot"),
    "minirnn.cells.gru.forward_jvp": each(JVP_SEQ, "x_dot h0_dot w_ih_dot w_hh_dot "
                                                        "b_ih_dot b_hh_dot"),
    "minirnn.cells.rnn.step_jvp": each(JVP_STEP, "nonlinearity"),
    "minirnn.cells.lstm.step_jvp": each(JVP_STEP, "w_hr w_hr_dot"),
    "minirnn.cells.gru.step_jvp": {},
    "minirnn.cells.rnn.backward_jvp": each(RBACK, "d_hT d_hT_dot input_grad"),
    "minirnn.cells.lstm.backward_jvp": each(RBACK, "d_hT d_cT d_hT_dot d_cT_dot "
                                                        "input_grad"),
    "minirnn.cells.gru.backward_jvp": each(RBACK, "d_hT d_hT_dot input_grad"),
    "minirnn.cells.rnn.step_backward_jvp": each(RBACK, "nonlinearity"),
    "minirnn.cells.lstm.step_backward_jvp": each(RBACK, "w_hr w_hr_dot"),
    "minirnn.cells.gru.step_backward_jvp": {},
    **{f"minirnn.cells.{f}.{c}TangentCache": {} for f, c in (
        ("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU"))},
    **{f"minirnn.cells.{f}.{c}{k}": {} for f, c in (("rnn", "RNN"), ("lstm", "LSTM"),
                                                     ("gru", "GRU"))
       for k in ("Cache", "GradSteps")},
    # ---- the modules: torch's API and the uniform state API ---------------------------------
    REC + "RNNBase": {**each(MODULE, "num_layers bias batch_first bidirectional proj_size dtype "
                                     "seed backend dropout")},
    REC + "RNN": each(MODULE, "num_layers nonlinearity bias batch_first dropout bidirectional "
                              "dtype seed backend"),
    REC + "LSTM": each(MODULE, "num_layers bias batch_first dropout bidirectional proj_size "
                               "dtype seed backend"),
    REC + "GRU": each(MODULE, "num_layers bias batch_first dropout bidirectional dtype seed "
                              "backend"),
    REC + "RNNBase.forward": each(MODULE, "hx lengths"),
    REC + "RNNBase.forward_state": each(MODULE, "state lengths"),
    REC + "RNNBase.backward": {**each(MODULE, "d_state return_steps input_grad"),
                               "retain_graph": ONCE + "test_retain_graph_keeps_the_record_for_one_more"},
    REC + "RNNBase.backward_state": {**each(MODULE, "d_state return_steps input_grad"),
                                     "retain_graph": ONCE + "test_retain_graph_keeps_the_record_"
                                                            "for_one_more"},
    REC + "RNNBase.to_time_major": each(METHODS, "unbatched"),
    REC + "RNNBase.from_time_major": each(METHODS, "unbatched"),
    REC + "RNNBase.state_tuple": each(METHODS, "name"),
    REC + "RNNBase.state_value": {},
    REC + "RNNBase.state_sizes": {},
    REC + "RNNBase.param_keys": each(TOOLS + "test_tool_accessors", "layer direction"),
    REC + "RNNBase.initial_state": {},
    REC + "RNNBase.last_forward": {},
    REC + "RNNBase.last_caches": {},
    REC + "RNNBase.preserve_record": {},
    REC + "RNNBase.jvp": each("tests/test_forward_mode.py::test_model_jvp_method_defaults_and_"
                              "untouched_record", "state tangents lengths"),
    REC + "ForwardRecord": {"freed": ONCE + "test_retain_graph_keeps_the_record_for_one_more"},
    "minirnn.nn.cells.RNNCell": each(CELL, "bias nonlinearity dtype seed backend"),
    "minirnn.nn.cells.LSTMCell": each(CELL, "bias dtype seed backend"),
    "minirnn.nn.cells.GRUCell": each(CELL, "bias dtype seed backend"),
    "minirnn.nn.cells.LSTMCell.forward": each(CELL, "hx"),
    "minirnn.nn.cells.LSTMCell.backward": {**each(CELL, "d_c"), "retain_graph": ONCE_CELLS},
    "minirnn.nn.cells._SingleStateCell.forward": each(CELL, "hx"),
    "minirnn.nn.cells._SingleStateCell.backward": {"retain_graph": ONCE_CELLS},
    "minirnn.nn.cells._CellBase.forward_state": each(CELL, "state"),
    "minirnn.nn.cells._CellBase.backward_state": {"retain_graph": ONCE_CELLS},
    "minirnn.nn.cells._CellBase.preserve_record": {},
    "minirnn.nn.module.Module": each(METHODS, "dtype seed"),
    "minirnn.nn.module.Module.named_parameters": each(METHODS, "prefix"),
    "minirnn.nn.module.Module.modules": each(METHODS, "prefix"),
    "minirnn.nn.module.Module.train": each(METHODS, "mode"),
    "minirnn.nn.module.Module.load_state_dict": each(METHODS, "strict"),
    **{f"minirnn.nn.module.Module.{m}": {} for m in (
        "add_module", "add_param", "eval", "grad_dict", "parameters", "state_dict",
        "using_backend", "zero_grad")},
    "minirnn.nn.layers.Linear": {**each(LAYERS, "dtype seed bias")},
    "minirnn.nn.layers.Embedding": {**each(LAYERS, "dtype seed"), "padding_idx":
                                    "tests/test_train_layers.py::"
                                    "test_embedding_forward_backward_match_torch"},
    "minirnn.nn.layers.Embedding.check_ids": each(LAYERS, "name"),
    "minirnn.nn.layers.Dropout": each(LAYERS, "p dtype seed"),
    **{f"minirnn.nn.layers.{c}.{m}": {} for c in ("Linear", "Embedding", "Dropout")
       for m in ("forward", "backward")},
    # ---- utils and the comparison helper ------------------------------------------------------
    "minirnn.utils.pad_sequence": each(TOOLS + "test_utils_match_torch",
                                       "batch_first padding_value padding_side"),
    "minirnn.utils.unpad_sequence": each(TOOLS + "test_utils_match_torch", "batch_first"),
    "minirnn.utils.sequence_lengths": {},
    "minirnn.testing.assert_close": each(TOOLS + "test_assert_close_rtol_atol_name",
                                         "rtol atol name"),
    # ---- the thread count (tests/test_threads_policy.py) ---------------------------------------
    "minirnn._blas.set_num_threads": {},
    "minirnn._blas.get_num_threads": {},
    # ---- the tools ----------------------------------------------------------------------------
    "minirnn.debug.tracing.trace": {
        **each(TRACING + "test_last_h_is_forward_h_n_exactly_and_grads_equal_backward",
               "hx lengths d_out"),
        "loss": TRACING + "test_loss_callable_gives_its_d_out"},
    "minirnn.debug.tracing.Trace": {},
    "minirnn.debug.tracing.Trace.step": each(TRACE_VIEWS, "layer direction"),
    "minirnn.debug.tracing.Trace.series": each(TRACE_VIEWS, "layer direction"),
    "minirnn.debug.tracing.Trace.variables": each(TRACE_VIEWS, "phase"),
    "minirnn.debug.tracing.Trace.to_frame": each(TRACE_VIEWS, "pandas"),
    "minirnn.debug.tracing.Trace.first_nonfinite": {},
    "minirnn.grad.gradcheck.gradcheck": {
        **each(GRADCHECK + "test_gradcheck_passes_every_configuration", "hx lengths"),
        **each(GRADCHECK + "test_max_entries_sampling_is_reproducible",
               "params max_entries seed"),
        **each(TOOLS + "test_gradcheck_eps_rtol_atol", "eps rtol atol"),
        **each(MODES, "mode order dot raise_on_failure")},
    "minirnn.grad.gradcheck.GradcheckReport": {**each(TOOLS + "test_gradcheck_eps_rtol_atol",
                                                      "model"), **each(MODES, "mode order")},
    **{f"minirnn.grad.gradcheck.GradcheckReport.{m}": {} for m in (
        "passed", "failed", "judged", "verdict", "table", "to_dict", "raise_if_failed")},
    "minirnn.debug.explore.explore": {
        **each(EXPLORE, "path hx token_level tokens title connect"),
        **each("tests/test_explore.py::test_predictions_and_loss_are_the_heads",
               "head targets top_k"),
        "vocab": "tests/test_explore.py::test_language_model_scores_the_next_token_and_is_left_"
                 "as_found",
        "labels": "tests/test_explore.py::test_classifier_backward_is_the_models_own",
        "loss": "tests/test_newuser_fixes.py::test_explore_takes_the_loss_as_an_argument",
        "overwrite": "tests/test_issue28_small.py::test_explore_refuses_to_replace_a_page_"
                     "unless_told"},
    # ---- training -----------------------------------------------------------------------------
    "minirnn.train.optim.SGD": each(OPTIM + "test_sgd_matches_torch",
                                    "momentum weight_decay nesterov"),
    "minirnn.train.optim.Adam": each(OPTIM + "test_adam_matches_torch",
                                     "lr betas eps weight_decay"),
    **{f"minirnn.train.optim.{m}": {} for m in (
        "SGD.step", "Adam.step", "Optimizer.load_state_dict", "Optimizer.state_dict",
        "Optimizer.zero_grad", "clip_grad_norm")},
    "minirnn.train.checkpoint.save_checkpoint": {
        **each("tests/test_train_checkpoint.py::test_round_trip",
               "config vocab labels step extra"), "optimizer": ENGINE},
    "minirnn.train.checkpoint.load_checkpoint": {},
    "minirnn.train.checkpoint.load_model_state": {},
    "minirnn.train.checkpoint.CheckpointError": {},
    "minirnn.nn.models.SequenceClassifier": each(
        ENGINE, "cell num_layers embedding_dim bidirectional dropout dtype seed backend"),
    "minirnn.nn.models.SequenceClassifier.forward": each(ENGINE, "lengths"),
    "minirnn.nn.models.SequenceClassifier.backward": {},
    "minirnn.nn.models.LanguageModel": {
        **each(LM, "cell num_layers seed"),
        **each("tests/test_train_torch_backend.py::test_models_rebuild_from_their_config",
               "dropout"),
        **each("tests/test_train_torch_backend.py::test_float32_twin", "dtype"),
        "backend": "tests/test_train_torch_backend.py::"
                   "test_numba_language_model_gives_the_numpy_numbers"},
    "minirnn.nn.models.LanguageModel.forward": each(LM, "state"),
    "minirnn.nn.models.LanguageModel.backward": {},
    "minirnn.nn.models.LanguageModel.init_state": {},
    "minirnn.nn.models._Composed.backend": {},
    "minirnn.nn.models._Composed.embed": {},
    "minirnn.train.engine.Engine": {
        **each("tests/test_train_engine.py::test_training_run_matches_torch_loss_curve",
               "optimizer lr momentum clip class_weight weight_decay nesterov"),
        **each(ENGINE, "backend device seed"), "ignore_index": LM,
        "distributed": "tests/test_distributed.py::"
                       "test_engine_refuses_a_nccl_group_for_its_own_kernels"},
    "minirnn.train.engine.Engine.load": each(ENGINE, "backend device distributed"),
    "minirnn.train.engine.Engine.save": each(ENGINE, "config vocab labels step extra"),
    "minirnn.train.engine.Engine.step": each(ENGINE, "lengths"),
    "minirnn.train.engine.Engine.predict": each(ENGINE, "lengths"),
    "minirnn.train.engine.Engine.step_lm": each(LM, "state"),
    "minirnn.train.engine.Engine.predict_lm": each(LM, "state"),
    "minirnn.train.engine.Engine.sync": {},
    "minirnn.train.engine.Engine.trainer": {},
    "minirnn.train.engine.Engine.add_hook": each(ENGINE, "every"),
    "minirnn.train.engine.Engine.step_truncated": each(
        "tests/test_train_truncated.py::test_equal_k1_k2_is_step_lm_on_chunks", "k2 state"),
}


# ---- the enumeration ------------------------------------------------------------------------

def _ours(obj):
    return (getattr(obj, "__module__", None) or "").startswith("minirnn")


def public_callables():
    """-> {dotted name where it is defined: callable} for the public API (module docstring)."""
    roots = [(minirnn, minirnn.__all__)]
    for sub in ("functional", "utils", "nn", "cells"):
        mod = importlib.import_module("minirnn." + sub)
        roots.append((mod, mod.__all__))
    found = {}

    def add(obj):
        found[f"{obj.__module__}.{obj.__qualname__}"] = obj
        if not inspect.isclass(obj):
            return
        for klass in obj.__mro__:
            if not _ours(klass):
                continue
            for name, member in vars(klass).items():
                member = getattr(member, "fget", None) or getattr(member, "__func__", member)
                if not name.startswith("_") and inspect.isfunction(member) and _ours(member):
                    found[f"{member.__module__}.{member.__qualname__}"] = member

    for module, names in roots:
        for name in names:
            obj = getattr(module, name)
            members = ([m for m in vars(obj).values() if getattr(m, "__module__", None) ==
                        obj.__name__ and not m.__name__.startswith("_")
                        and (inspect.isfunction(m) or inspect.isclass(m))]
                       if inspect.ismodule(obj) else [obj])
            for m in members:
                if (inspect.isfunction(m) or inspect.isclass(m)) and _ours(m):
                    add(m)
    return found


def optional_arguments(obj):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):         # an exception class: no Python signature
        return set()
    return {p.name for p in sig.parameters.values() if p.default is not inspect.Parameter.empty}


@lru_cache(maxsize=None)
def _test_sources(path):
    """test name -> its source (decorators, signature, docstring, body) in a test file."""
    text = (ROOT / path).read_text(encoding="utf-8")
    lines = text.splitlines()
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            out[node.name] = "\n".join(lines[start - 1:node.end_lineno])
    return out


# ---- the tests --------------------------------------------------------------------------------

def test_every_public_callable_is_registered():
    found = public_callables()
    assert len(found) > 100                          # the enumeration itself works
    missing = sorted(set(found) - set(CASES))
    stale = sorted(set(CASES) - set(found))
    assert not missing, f"public callables without an entry in CASES: {missing}"
    assert not stale, f"CASES entries that are no longer public callables: {stale}"
    wrong = {}
    for key, obj in found.items():
        want, have = optional_arguments(obj), set(CASES[key])
        if want != have:
            wrong[key] = {"unregistered": sorted(want - have), "not arguments": sorted(have - want)}
    assert not wrong, f"optional arguments out of step with CASES: {wrong}"


def test_each_case_names_a_test_that_passes_it():
    problems = []
    for key, args in CASES.items():
        for arg, ref in args.items():
            path, _, name = ref.partition("::")
            if not (ROOT / path).is_file():
                problems.append(f"{key}({arg}): no file {path}")
                continue
            source = _test_sources(path).get(name)
            if source is None:
                problems.append(f"{key}({arg}): no test {ref}")
            elif not re.search(rf"\b{re.escape(arg)}\b", source):
                problems.append(f"{key}({arg}): {ref} never names {arg!r}")
    assert not problems, "\n".join(problems)
