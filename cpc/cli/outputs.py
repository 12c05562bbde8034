"""The output-folder rule of every verb, as one decorator: ``@writes_folder("out", "--out")``.

A verb that writes a folder runs inside :func:`cpc.checkpoints.outputs.output_folder`:
it holds the folder's lock (a second ``cpc`` process writing the same folder is refused
at once, naming the first), and if it fails in any way (a bad file with ``--strict``, a
full disk, Ctrl-C) everything it had created there is removed, and a full disk or a
read-only place is reported in one line naming the path and the space. Verbs that write
a single file use :func:`cpc.checkpoints.outputs.atomic_file` instead.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from cpc.checkpoints.outputs import output_folder

Verb = Callable[[argparse.Namespace], int]


def writes_folder(
    attr: str, flag: str, beside: bool = False, clean: bool = True
) -> Callable[[Verb], Verb]:
    """Run the decorated verb inside the output folder ``args.<attr>`` (if given).

    Args:
        attr: The namespace attribute holding the folder (``out``, ``output``).
        flag: How messages name it (``--out``).
        beside: Lock it from beside (for a folder renamed into place whole, which must
            not exist or be empty until then: ``cpc convert``; or a file that its writer
            renames into place itself: ``cpc data librispeech``).
        clean: Remove what a failed run created (off for folders of training runs,
            which resume; :func:`~cpc.checkpoints.outputs.output_folder`).

    """

    def decorate(verb: Verb) -> Verb:
        @functools.wraps(verb)
        def guarded(args: argparse.Namespace) -> int:
            path = getattr(args, attr)
            if path is None:
                return verb(args)
            with output_folder(path, f"{flag} {path}", beside=beside, clean=clean):
                return verb(args)

        return guarded

    return decorate
