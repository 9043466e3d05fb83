"""docproc: the Eblocks case study, secure document processing.

Each stage of the paper's system is an ordinary module whose functions the
blocks in ``examples/docproc/*.yaml`` reference as handlers. The package also
plugs ``eblocks docproc ...`` and ``eblocks bench docproc`` into the CLI.
"""
