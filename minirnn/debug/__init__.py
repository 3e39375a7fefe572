"""Looking inside a run: the step tracer, the step-through debugger and its renderers."""
