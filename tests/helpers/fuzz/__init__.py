"""The fuzzer's parts (tests/test_fuzz.py runs it): engine.py spoils arguments and judges one
bounded call, world.py builds the valid baseline calls' objects, recipes*.py hold a baseline
call per public callable."""
