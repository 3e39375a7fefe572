"""The classic recurrent-network tutorials, run on minirnn (see docs/training.md).

    data       shipped data, the fixed stratified names split, vocabularies, tokenizers
    metrics    accuracy, macro accuracy, per-class recall, confusion matrix, plots
    hihell     one-hot "hihell" -> "ihello" (Elman RNN); build_example() for the step debugger
    sentences  a character RNN that completes three sentences
    names      surname -> language: the tutorial's RNN and an LSTM classifier
    script     word- and character-level LSTM language models on tiny-Shakespeare

Each tutorial module has main(...), which `minirnn train <task>` calls; _run holds what the
runs share (the output directory rule, Ctrl-C and --resume, the running-loss log).
"""
