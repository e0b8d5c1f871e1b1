"""Every tolerance and threshold of the 2D engine, in one frozen options object.

``slice_regions(model, plane, options=EngineOptions(...))`` takes it; nothing in the engine
reads a module constant. Only the tolerances change results (by regions thinner than
``snap_rtol``); the rest choose *how* the exact partition is computed (which method finds
chords, how much is kept or batched) and change only time and memory — the tests use
them to drive every code path on small networks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from reluscope._validation import check_int, message
from reluscope.errors import InputValueError


@dataclass(frozen=True)
class EngineOptions:
    """Tunables of :func:`reluscope.slice_regions`.

    Attributes
    ----------
    snap_rtol : float
        A vertex within ``snap_rtol * diameter`` (plane units; ``diameter`` = diagonal of the
        domain's bounding box) of a neuron's zero line lies on it, and chord crossings closer
        than that are one vertex: regions thinner than that are not created.
    tie_rtol : float
        A max-pool stage's value within ``tie_rtol`` of its site's largest value on the
        faces at hand is a tie (exactly 0: the earlier candidate wins). Candidates equal on a
        whole face -- zeros after a ReLU -- give a stage that is 0 there, which rounding at
        vertices on other neurons' lines must not turn into a cut or an active bit.
    candidate_rtol : float
        Band (relative to the diameter) within which a neuron is re-checked with canonical
        vertex values rather than trusted to a face map's sign.
    chunk_entries : int
        Target float64 entries of one (faces x neurons) value block (three such blocks stay
        under glibc's 32 MB mmap ceiling, see ``reluscope._memory``).
    pool_compact_slots : int
        A face cut in rounds keeps every intermediate piece's ring; the store is compacted to
        the rings still in use once it holds more than this many slots and twice those.
    slot_batch : int
        (chord, ring slot) entries, or ring slots, handled at a time where chords meet the
        faces' rings: their crossings with edges found and inserted, and their signs at the
        ring vertices of faces cut all at once (bounds the temporaries).
    sign_batch : int
        Ring slots on edges whose signs for their chord are found at a time (a dozen float64
        temporaries each: an arrangement of thousands of chords has 10^7 such slots).
    forward_entries : int
        Float64 entries (points x neurons of every site reached) one plain forward pass at
        the vertices may hold: a network without links (a max-pool's stages) gets its
        values by such passes. Too small, a call's fixed cost dominates; too large, a
        convolution's unfolded input leaves the cache (LeNet, 2-core machine: 2^20 entries,
        ~130 points a pass, sliced a 4*10^4-region square in 5.7 s; 2^24 took 8.2 s).
    cache_entries : int
        Keep a site's maps on every face for the next site when they fit in this many entries.
    walk_min_width : int
        Walk the faces with one running map (rank-1 terms across shared edges) when the
        previous site has at least this many neurons and the site is chained.
    sibling_cost : int
        Narrow layers: a sibling's chord update costs ~1/sibling_cost of a full GEMM row block.
    sibling_batch : int
        Chord updates applied per batch (memory: sibling_batch x 3 x size floats).
    arrange : bool
        Cut each face by all its chords at once (an arrangement); False: chord by chord.
    arrange_min_chords : int
        Faces with at least this many chords are arranged; fewer are cut in rounds.
    arrange_retry_snap : float
        An inconsistent arrangement is built once more with this fraction of the snap
        distance (crossings merged along one chord near a ring vertex two chords share can
        put both chords on one edge), before its faces are cut in rounds.
    dense_chords : int
        Arranged faces with at least this many chords get their pieces' chord bits by
        flooding from their largest piece across chord edges (one bit group flipped per
        edge); fewer: each piece evaluates its face's chords at its vertex mean.
    column_subsets : bool
        Store a site's rows as the bits of the neurons that vary over the slice, with one
        reference row for the others (see :class:`~reluscope.regions.patterns.ColumnSubset`),
        when those are at most ``column_subset_fraction`` of its neurons; False: full rows.
    column_subset_fraction : float
        See `column_subsets`.
    values_max_entries : int
        Take a site's values at the vertices when the (vertices x neurons) float64 matrix has
        at most this many entries; otherwise per-face maps.
    ahead_max_entries : int
        When a site without a link takes its values by forward passes, the later sites
        without a link come out of the same passes: keep theirs at today's vertices while
        they (with room for as many new vertices) hold at most this many float64 entries.
        Saves repeated passes on small slices; on large ones the memory costs more than the
        passes (0: never keep them).
    pool_values : bool
        A max-pool of a site's activation (conv -> ReLU -> max-pool) takes its stages' values
        at the vertices from that site's, by gathering each window's candidates, and the
        next site's through the pool's link (no forward pass per vertex), while the pooled
        site's values fit ``values_max_entries``. False: forward passes (the tests compare).
    arrangement_max_pairs : int
        Largest number of chord pairs one arrangement call intersects (memory guard; larger
        faces are cut in rounds).
    arrange_batch_chords : int
        Faces cut all at once are arranged in batches of about this many chords (a face with
        more is a batch of its own): the arrangement's temporaries stay bounded, and a batch
        whose arrangement is inconsistent sends only its own faces to rounds.
    walk_anchor_steps : int
        Steps of the walk between exact anchors of the running map (bounds rounding).
    walk_line_refresh : int
        Updates of a neuron's line vector before it is recomputed in full (bounds rounding).
    walk_buffer_pairs : int
        Most candidate pairs buffered per walk kernel call (40 bytes each, held by every
        walker through its whole walk; a full buffer only costs one return to Python), and
        at least one face's worth (the site's width). The buffers start at 1/16 of this
        (small slices find few pairs) and grow 4x when a face's candidates do not fit.
    walk_parallel_faces : int
        Sites with at least this many faces are walked by several threads.
    walk_max_threads : int
        Most threads of one walk.
    walk_root_batch : int
        Exact maps at the faces each walk starts a component from are computed this many
        faces per pass, as the walk reaches them (a network whose earlier link is not dense -- a CNN --
        splits the walk into one component per face of two sites back).
    link_dense_fraction : float
        A sparse link (a conv net's, see ``reluscope.nets.links``) with more than this
        fraction of its entries non-zero is held as a dense matrix when that fits
        (``MAX_LINK_ENTRIES``): a GEMM then beats the layers' own operator (LeNet's link
        from its first max-pool to its second conv, 17% non-zero: 1.7x faster held dense on
        slices cut by per-face maps; it was 0.25).
    pool_link_difference : float
        Per-face maps through a max-pool's link are a batch's first face's product plus the
        differences, through the link's columns at the pool outputs that differ between the
        batch's faces, when at most this fraction of them differ (faces next to each other
        share most argmaxes: LeNet's 3/10 square, 7% on average); else the plain product.
    """

    snap_rtol: float = 1e-10
    tie_rtol: float = 1e-10
    candidate_rtol: float = 1e-6
    chunk_entries: int = 1 << 20
    forward_entries: int = 1 << 20
    slot_batch: int = 1 << 18
    sign_batch: int = 1 << 15
    pool_compact_slots: int = 1 << 18
    cache_entries: int = 1 << 25
    walk_min_width: int = 128
    sibling_cost: int = 8
    sibling_batch: int = 4096
    arrange: bool = True
    arrange_min_chords: int = 4
    arrange_retry_snap: float = 1e-3
    dense_chords: int = 16
    column_subsets: bool = True
    column_subset_fraction: float = 0.5
    values_max_entries: int = 1 << 26
    ahead_max_entries: int = 1 << 24
    pool_values: bool = True
    arrangement_max_pairs: int = 1 << 24
    arrange_batch_chords: int = 1 << 16
    walk_anchor_steps: int = 16384
    walk_line_refresh: int = 1 << 16
    walk_buffer_pairs: int = 1 << 14
    walk_parallel_faces: int = 20_000
    walk_max_threads: int = 8
    walk_root_batch: int = 128
    link_dense_fraction: float = 0.1
    pool_link_difference: float = 0.25

    def __post_init__(self) -> None:
        #: fields that may be 0 (0 turns the method off: always the other one)
        may_be_zero = {"cache_entries", "values_max_entries", "ahead_max_entries", "walk_min_width"}
        for spec in fields(self):
            value = getattr(self, spec.name)
            where = f"`{spec.name}` of EngineOptions"
            if spec.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise InputValueError(message(where, "True or False", repr(value), "Pass a bool."))
                continue
            if spec.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                    raise InputValueError(message(where, "a relative tolerance in (0, 1)", repr(value),
                                                  f"The default is {spec.default}."))
                continue
            check_int(value, where, low=0 if spec.name in may_be_zero else 1,
                      example=f"{spec.name}={spec.default} (the default)")
