"""plan_publish(): what publishing would do against what is on the topic (the broker is in the integration tests)."""

from __future__ import annotations

from deploy.definitions_topic import DefinitionStore, plan_publish
from schemas.definitions import Definition
from tests.unit.experiments.base import definition


def _store(*definitions: Definition) -> DefinitionStore:
    records = [d.to_record() for d in definitions]
    return DefinitionStore({(r.key, r.revision): r for r in records})


def test_a_new_experiment_is_published() -> None:
    (plan,) = plan_publish([definition()], _store())

    assert (plan.action, plan.changes, plan.problems, plan.against) == ("publish", (), (), None)


def test_the_same_revision_with_the_same_content_is_a_no_op() -> None:
    (plan,) = plan_publish([definition(owner="x")], _store(definition(owner="x")))

    assert (plan.action, plan.against) == ("unchanged", 1)


def test_the_same_revision_with_other_content_is_refused_even_when_cosmetic() -> None:
    (cosmetic,) = plan_publish([definition(title="Renamed")], _store(definition()))
    (reassigning,) = plan_publish([definition(scheme_params={"salt": "s2"})], _store(definition()))

    assert cosmetic.action == "refused"
    assert cosmetic.problems == (
        "revision 1 of 'checkout' is already published with other content (title: 'Checkout' → 'Renamed'); "
        "a published revision never changes: bump the revision",
    )
    assert reassigning.action == "refused"
    assert reassigning.problems == ("revision must be bumped: scheme_params.salt: 'checkout' → 's2'",)


def test_a_new_revision_is_checked_against_the_latest_published_one() -> None:
    store = _store(definition(), definition(revision=2, state="inactive"))

    (restart,) = plan_publish([definition(revision=3, title="Again")], store)
    (rollout,) = plan_publish([definition(revision=3, state="rollout", rollout_variant="B")], store)

    assert (restart.action, restart.against) == ("publish", 2)
    assert [c.summary for c in restart.changes] == ["state: 'inactive' → 'active'", "title: 'Checkout' → 'Again'"]
    assert rollout.action == "refused" and rollout.problems[0].startswith("inactive → rollout is not allowed")


def test_an_older_unpublished_revision_is_refused() -> None:
    (plan,) = plan_publish([definition(revision=1)], _store(definition(revision=2)))

    assert plan.problems == ("revision went backwards from 2 to 1; revisions only go up",)


def test_the_store_answers_by_key_and_revision() -> None:
    store = _store(definition(revision=2), definition(revision=1), definition(key="other", scheme_params={"salt": "o"}))

    assert store.revisions("checkout") == [1, 2] and store.revisions("nope") == []
    assert {key: record.revision for key, record in store.latest().items()} == {"checkout": 2, "other": 1}
    assert len(store) == 3 and store.get("checkout", 3) is None
