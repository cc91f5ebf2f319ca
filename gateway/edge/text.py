"""One rule for every string a client sends: request-body fields, path and query parameters.

A text value is accepted when

- it holds no control character: Unicode general category ``Cc`` (U+0000-U+001F, U+007F-U+009F;
  NUL in particular, which PostgreSQL ``text``/``jsonb`` cannot store) and no lone surrogate
  (``Cs``, not encodable as UTF-8). Format characters (``Cf``: ZWJ/ZWNJ, which Indic scripts need) are
  allowed;
- after normalising to Unicode NFC it has at most ``max_length`` code points.

Decision: non-NFC input is **normalised**, not rejected (macOS and some Indic keyboards send NFD; the
same city must compare equal however it was typed), so what is stored and returned is always NFC.
Violations are pydantic errors, i.e. HTTP 422 ``validation-error`` with the field's ``loc``, like
every other validation failure (docs/gateway.md "Input rules"). Fields with an ASCII ``pattern``
(ids, region codes, PAN, GSTIN) satisfy the rule by construction.

Use :data:`SafeText` (at most :data:`MAX_TEXT` code points) or ``Annotated[str, TextRule(n)]`` for
another bound, as a model field type or a route parameter type (FastAPI applies the same validation,
and the bound shows in the OpenAPI schema). Leading and trailing whitespace of body fields is
stripped first (``str_strip_whitespace`` of the request models).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

MAX_TEXT = 200
#: ids a shard or the key store assigns (``O-IN-GJ.cotton-17``, key ids), path parameters
MAX_ID = 128

# Cc is exactly U+0000-U+001F and U+007F-U+009F; Cs is U+D800-U+DFFF.
_FORBIDDEN = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\udfff]")


def clean_text(value: str, max_length: int = MAX_TEXT) -> str:
    """``value`` in NFC, checked against the rule above.

    Raises:
        pydantic_core.PydanticCustomError: ``text_control_character`` (names the code point and its
            position) or ``text_too_long`` (the NFC form exceeds ``max_length`` code points).
    """
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise PydanticCustomError(
            "text_control_character",
            "control character U+{cp} at position {pos} is not allowed",
            {"cp": f"{ord(bad.group()):04X}", "pos": bad.start()},
        )
    if not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    if len(value) > max_length:
        raise PydanticCustomError(
            "text_too_long",
            "at most {max_length} characters (in Unicode NFC)",
            {"max_length": max_length},
        )
    return value


@dataclass(frozen=True, slots=True)
class TextRule:
    """Annotated-metadata form of the rule: ``Annotated[str, TextRule(100)]`` validates with
    :func:`clean_text` and shows ``minLength``/``maxLength`` in the JSON schema."""

    max_length: int = MAX_TEXT
    min_length: int = 0

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        inner = handler(source)
        if inner.get("type") == "str":
            inner = {**inner, "max_length": self.max_length}
            if self.min_length:
                inner["min_length"] = self.min_length
        return core_schema.no_info_after_validator_function(
            functools.partial(clean_text, max_length=self.max_length), inner
        )


SafeText = Annotated[str, TextRule()]
#: an id in a path or query (order, proposal, reservation, allocation, party, key, shard id)
EntityId = Annotated[str, TextRule(MAX_ID, min_length=1)]
