"""Carrying reviews over to a promoted result version (service/review_carry.py): the examples a reviewer would
check, and seeded random event sets (thousands; FLEETSENSE_SIM_SEED=N replays one) where the new version moves,
stretches, splits, merges and drops the old events."""

from __future__ import annotations

import os
import random

from fleetsense.service.review_carry import Review, Span, carry

CASES = int(os.environ.get("FLEETSENSE_SIM_CASES", "3000"))
SEED_ENV = os.environ.get("FLEETSENSE_SIM_SEED")
SEEDS = [int(SEED_ENV)] if SEED_ENV else list(range(CASES))
KINDS = ("harsh_brake", "harsh_acceleration", "harsh_corner")


def test_a_review_follows_its_event_when_a_lower_threshold_starts_it_earlier() -> None:
    old = [Span("harsh_brake", 10_000, 11_000)]
    new = [Span("harsh_brake", 9_800, 11_200)]
    dismissed = Review("harsh_brake", 10_000, (("state", "dismissed"),))
    result = carry([dismissed], old, new)
    assert result.moved == [(dismissed, new[0])] and result.kept == 0 and not result.lost


def test_an_unchanged_event_keeps_its_review_and_a_vanished_one_is_reported() -> None:
    old = [Span("harsh_brake", 10_000, 11_000), Span("harsh_corner", 50_000, 50_500)]
    new = [Span("harsh_brake", 10_000, 11_000)]
    reviews = [Review("harsh_brake", 10_000), Review("harsh_corner", 50_000)]
    result = carry(reviews, old, new)
    assert result.kept == 1 and result.moved == [] and result.lost == [reviews[1]]


def test_another_kind_never_takes_a_review_and_a_reviewed_event_gets_no_second() -> None:
    old = [Span("harsh_brake", 10_000, 11_000), Span("harsh_brake", 11_500, 12_000)]
    new = [
        Span("harsh_corner", 10_000, 11_000),
        Span("harsh_brake", 11_500, 12_000),
        Span("harsh_brake", 9_000, 11_600),
    ]
    reviews = [Review("harsh_brake", 10_000), Review("harsh_brake", 11_500)]
    result = carry(reviews, old, new)
    assert result.kept == 1  # 11,500 is still there, and keeps its review
    assert result.moved == [(reviews[0], Span("harsh_brake", 9_000, 11_600))]


def test_two_old_events_merged_into_one_give_it_the_first_review_and_report_the_other() -> None:
    old = [Span("harsh_brake", 10_000, 10_400), Span("harsh_brake", 10_500, 11_000)]
    new = [Span("harsh_brake", 9_900, 11_100)]
    reviews = [Review("harsh_brake", 10_500, (("state", "coached"),)), Review("harsh_brake", 10_000)]
    result = carry(reviews, old, new)
    assert result.moved == [(reviews[1], new[0])] and result.lost == [reviews[0]]


def random_events(rng: random.Random) -> list[Span]:
    spans, clock = [], rng.randrange(0, 10_000)
    for _ in range(rng.randrange(0, 12)):
        clock += rng.randrange(100, 5_000)
        length = rng.randrange(0, 3_000)
        spans.append(Span(rng.choice(KINDS), clock, clock + length))
    return spans


def reshaped(rng: random.Random, old: list[Span]) -> list[Span]:
    new = []
    for span in old:
        draw = rng.random()
        if draw < 0.2:
            continue  # gone
        if draw < 0.6:
            shift = rng.randrange(-400, 400)
            new.append(
                Span(
                    span.kind, span.start_ms + shift, max(span.start_ms + shift, span.end_ms + rng.randrange(-300, 300))
                )
            )
        elif draw < 0.7:
            middle = (span.start_ms + span.end_ms) // 2
            new += [Span(span.kind, span.start_ms, middle), Span(span.kind, middle + 1, span.end_ms)]
        else:
            new.append(span)
    new += random_events(rng)[: rng.randrange(0, 3)]
    return list({(s.kind, s.start_ms): s for s in new}.values())  # one event per (kind, start), as keyed


def test_every_review_is_kept_moved_or_lost_once_and_moves_only_to_an_overlapping_event_of_its_kind() -> None:
    outcomes = {"kept": 0, "moved": 0, "lost": 0}
    for seed in SEEDS:
        rng = random.Random(seed)
        old = list({(s.kind, s.start_ms): s for s in random_events(rng)}.values())
        new = reshaped(rng, old)
        reviews = [Review(s.kind, s.start_ms) for s in old if rng.random() < 0.7]
        result = carry(reviews, old, new)
        assert result.kept + len(result.moved) + len(result.lost) == len(reviews), seed
        old_by_key = {(s.kind, s.start_ms): s for s in old}
        new_keys = {(s.kind, s.start_ms) for s in new}
        targets = [(span.kind, span.start_ms) for _, span in result.moved]
        assert len(targets) == len(set(targets)), seed  # one review per new event
        reviewed_unchanged = {(r.kind, r.start_ms) for r in reviews} & new_keys
        assert not set(targets) & reviewed_unchanged, seed  # never over a review that still matches
        for review, span in result.moved:
            was = old_by_key[(review.kind, review.start_ms)]
            assert span.kind == review.kind and span.overlap_ms(was) >= 0 and (span.kind, span.start_ms) in new_keys, (
                seed
            )
        for review in result.lost:
            was = old_by_key[(review.kind, review.start_ms)]
            free = [
                s
                for s in new
                if s.kind == review.kind
                and s.overlap_ms(was) >= 0
                and (s.kind, s.start_ms) not in set(targets) | reviewed_unchanged
            ]
            assert not free, seed  # lost only when every overlapping event of its kind is someone else's
        outcomes["kept"] += result.kept
        outcomes["moved"] += len(result.moved)
        outcomes["lost"] += len(result.lost)
    assert all(outcomes.values()) or len(SEEDS) < 100, outcomes  # every outcome happens: the checks are not vacuous
