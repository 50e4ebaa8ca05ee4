"""params.yaml as frozen pydantic models: the schema, its defaults and the rules across keys.

Every field defaults to the default profile's value, so a profile in profiles/ holds only its
overrides and ``python -m embedtune.config`` writes the full, commented params.yaml from one.
Unknown or mistyped keys stop the run before minutes of work, naming the dotted key.
"""

from embedtune.config.base import Pos, Share
from embedtune.config.documents import Chunk, Generate, RoundTrip
from embedtune.config.inputs import (
    BuildIrEval,
    Columns,
    Corpus,
    CorpusColumns,
    Fetch,
    Split,
)
from embedtune.config.params import (
    RENAMED,
    Params,
    advice,
    check_token_limits,
    load,
    load_yaml,
    merge,
    parse,
    replace,
)
from embedtune.config.render import main, reference_rows, render
from embedtune.config.shared import Common, ModelSource
from embedtune.config.training import Export, ExportFormat, HardNegatives, Train

__all__ = [
    "RENAMED",
    "BuildIrEval",
    "Chunk",
    "Columns",
    "Common",
    "Corpus",
    "CorpusColumns",
    "Export",
    "ExportFormat",
    "Fetch",
    "Generate",
    "HardNegatives",
    "ModelSource",
    "Params",
    "Pos",
    "RoundTrip",
    "Share",
    "Split",
    "Train",
    "advice",
    "check_token_limits",
    "load",
    "load_yaml",
    "main",
    "merge",
    "parse",
    "reference_rows",
    "render",
    "replace",
]
