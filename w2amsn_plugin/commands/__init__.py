"""The ``w2amsn`` verbs, one module each (``prepare-ixi`` is :mod:`.prepare_ixi`): each exposes
``configure_parser(parser)`` and ``run(args) -> int`` and holds only the command line; the work
is done by the library packages (:mod:`w2amsn_plugin.data`, :mod:`w2amsn_plugin.inference`,
:mod:`w2amsn_plugin.benchmarks`, ...). :func:`w2amsn_plugin.cli.w2amsn_main` dispatches."""
