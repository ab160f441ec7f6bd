"""Everything Paddle Lite: the managed toolchain (env.py), the worker that runs inside it
(worker.py), ProgramDesc compatibility passes (passes.py), the ``.nb`` reader (naive_buffer.py)
and the conversion step (convert.py). The rest of the package sees this small API."""
