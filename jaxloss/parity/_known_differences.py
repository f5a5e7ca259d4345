"""Known differences: where a torch release departs from torch 2.13's numbers and jaxloss keeps 2.13's.

jaxloss mirrors torch 2.13's semantics and is tested against torch 2.13 and 2.14. When a later release changes a
loss's value or gradient on some inputs and jaxloss deliberately keeps 2.13's, the parity report
(``python -m jaxloss.parity``) counts the failed comparisons that `KNOWN_DIFFERENCES` explains for the installed
torch as "known" rather than as failures, and lists every entry that applies to that torch.
"""

import dataclasses
import fnmatch
import re

import jaxloss.functional
from jaxloss.testing._torch import require_torch

TESTED_RELEASES: tuple[str, ...] = ("2.13", "2.14")
"""The torch releases jaxloss is tested against; another one may differ in ways `KNOWN_DIFFERENCES` does not list."""

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def torch_version(text: str) -> tuple[int, int, int]:
    """The release of a torch version string: ``'2.14.1+cu130'`` is ``(2, 14, 1)``.

    Local labels (``+cu130``) and pre-release or development suffixes (``2.15.0.dev20260101``, ``2.14.0a0``) are
    ignored; a missing patch number is 0.

    Args:
      text: ``torch.__version__``.

    Returns:
      ``(major, minor, patch)``.

    Raises:
      ValueError: if `text` does not start with ``MAJOR.MINOR``.
    """
    found = _VERSION.match(text)
    if found is None:
        raise ValueError(f"cannot read torch's version {text!r}: expected MAJOR.MINOR[.PATCH], e.g. '2.14.1+cu130'")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def _release(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", text):
        raise ValueError(
            f"KnownDifference: `torch_versions` holds {text!r}, expected a release like '2.14' or '2.14.1'"
        )
    return tuple(int(part) for part in text.split("."))


def is_tested(version: tuple[int, int, int]) -> bool:
    """Whether `version` (see `torch_version`) is of one of `TESTED_RELEASES`."""
    return any(version[:2] == _release(release) for release in TESTED_RELEASES)


@dataclasses.dataclass(frozen=True)
class KnownDifference:
    """A difference of some torch releases from torch 2.13 that jaxloss keeps.

    Attributes:
      torch_versions: the releases that differ: ``'2.14'`` for every 2.14.x, ``'2.14.1'`` for that one only.
      loss: the loss, a name in `jaxloss.parity.LOSSES`.
      case_ids: `fnmatch` patterns of the ids of the cases that differ (`jaxloss.parity.Case.id`), e.g.
        ``'kl_div-*-mean'``; empty for a difference that no case of the grid shows (an option's default, an
        error), listed for the record.
      what: the comparison that differs, a `jaxloss.testing.Comparison.what` such as ``'value'`` or
        ``'d/dinput'``; ``'error'`` where one side raises; a prefix ending in ``*`` (``'d/d*'``: every
        gradient); ``'*'`` for every comparison of the cases.
      description: what differs and why jaxloss keeps torch 2.13's behaviour, for the report.

    Raises:
      ValueError: if a field is empty, `torch_versions` holds something other than releases, or `loss` is not a
        loss of the grid.
    """

    torch_versions: tuple[str, ...]
    loss: str
    case_ids: tuple[str, ...]
    what: str
    description: str

    def __post_init__(self) -> None:
        if isinstance(self.torch_versions, str) or not self.torch_versions:
            raise ValueError(
                f"KnownDifference: `torch_versions` must be a non-empty tuple of strings, got {self.torch_versions!r}"
            )
        if isinstance(self.case_ids, str):
            raise ValueError(f"KnownDifference: `case_ids` must be a tuple of strings, got {self.case_ids!r}")
        for version in self.torch_versions:
            _release(version)
        if self.loss not in jaxloss.functional.__all__:
            raise ValueError(f"KnownDifference: `loss` must be one of jaxloss.parity.LOSSES, got {self.loss!r}")
        for name in ("what", "description"):
            if not getattr(self, name):
                raise ValueError(f"KnownDifference: `{name}` must not be empty")

    def applies_to(self, version: tuple[int, int, int]) -> bool:
        """Whether the torch of `version` (see `torch_version`) is one of `torch_versions`."""
        return any(version[: len(release)] == release for release in map(_release, self.torch_versions))

    def explains(self, loss: str, case_id: str, what: str) -> bool:
        """Whether this difference covers comparison `what` of case `case_id` of `loss`."""
        return (
            loss == self.loss
            and any(fnmatch.fnmatchcase(case_id, pattern) for pattern in self.case_ids)
            and (self.what == what or (self.what.endswith("*") and what.startswith(self.what[:-1])))
        )


# torch 2.14's clamp, clamp_min and clamp_max give gradient 0 at the bound (pytorch#184572, #184574, #191142;
# 2.13: 1). The hinge losses clamp at 0, so their gradient at the kink itself changed; everywhere else it is equal.
_CLAMP_AT_THE_KINK = (
    "torch 2.14 differentiates clamp(x, min=0) to 0 at x = 0 (2.13: 1), so at the kink itself, where the hinge's "
    "argument is exactly 0, its gradient is 0; jaxloss keeps torch 2.13's (the gradient of the active branch). "
    "Values, and gradients away from the kink, are equal."
)

KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(("2.14",), "margin_ranking_loss", ("margin_ranking_loss-*kinks-*",), "d/d*", _CLAMP_AT_THE_KINK),
    KnownDifference(("2.14",), "hinge_embedding_loss", ("hinge_embedding_loss-*kinks-*",), "d/d*", _CLAMP_AT_THE_KINK),
    KnownDifference(
        ("2.14",), "cosine_embedding_loss", ("cosine_embedding_loss-clamp_ties-*",), "d/d*", _CLAMP_AT_THE_KINK
    ),
    KnownDifference(
        ("2.14",),
        "triplet_margin_loss",
        ("triplet_margin_loss-p1.0-*", "triplet_margin_loss-p2.0-*", "triplet_margin_loss-pinf*"),
        "d/d*",
        _CLAMP_AT_THE_KINK,
    ),
    KnownDifference(
        ("2.14",),
        "triplet_margin_with_distance_loss",
        ("triplet_margin_with_distance_loss-l1_margin_tie-*", "triplet_margin_with_distance_loss-squared_swap-*"),
        "d/d*",
        _CLAMP_AT_THE_KINK,
    ),
    KnownDifference(
        ("2.14",),
        "linear_cross_entropy",
        (),
        "chunk_size",
        "torch 2.14's LinearCrossEntropyOptions picks another default batch chunk size (pytorch#187838; e.g. 128 "
        "rows where 2.13 picks 64 for N=8192, in=512, C=32768); jaxloss's chunk_size keeps 2.13's rule. Chunking "
        "changes only the order of the sums: values within float32 rounding (about 3e-7 relative).",
    ),
    KnownDifference(
        ("2.14",),
        "linear_cross_entropy",
        (),
        "acc_policy",
        "torch 2.14 refuses LinearCrossEntropyOptions(acc_policy='balanced') with a ValueError; jaxloss accepts "
        "it, as torch 2.13 does.",
    ),
)
"""Every known difference, for every torch release jaxloss is tested against; see `KnownDifference`."""


def applying_to(version: tuple[int, int, int]) -> tuple[KnownDifference, ...]:
    """The entries of `KNOWN_DIFFERENCES` that apply to the torch of `version` (see `torch_version`)."""
    return tuple(difference for difference in KNOWN_DIFFERENCES if difference.applies_to(version))


def of_installed_torch() -> tuple[KnownDifference, ...]:
    """The known differences that apply to the installed torch (see `applying_to`)."""
    return applying_to(torch_version(str(require_torch().__version__)))
