"""Plan limits: a plan is cut to PLAN_MAX_STEPS steps and PLAN_MAX_SERVERS servers, with a note."""

from agents_app.master.plan import ChosenServer, Plan, WorkflowStep, plan_within_limits


def _server(slug: str) -> ChosenServer:
    return ChosenServer(need=slug, slug=slug, name=slug.title(), repository_url="", confidence=0.9, reason="")


def _plan(steps: int, servers: int) -> Plan:
    slugs = [f"s{i}" for i in range(servers)]
    return Plan(request="r", servers=[_server(s) for s in slugs],
                workflow=[WorkflowStep(step=i + 1, action=f"do {i}", server=slugs[i % servers] if i % 3 else None)
                          for i in range(steps)])


def test_a_plan_within_the_limits_is_unchanged():
    plan = _plan(5, 3)
    before = plan.to_dict()
    assert plan_within_limits(plan, max_steps=20, max_servers=8).to_dict() == before


def test_steps_beyond_the_limit_are_cut_renumbered_and_noted():
    plan = plan_within_limits(_plan(1350, 4), max_steps=20, max_servers=8)
    assert [s.step for s in plan.workflow] == list(range(1, 21))
    assert len(plan.notes) == 1 and "1350 workflow steps" in plan.notes[0] and "at most 20 workflow steps" in plan.notes[0]
    assert "split the request" in plan.notes[0]


def test_servers_beyond_the_limit_keep_those_the_first_steps_use_and_no_step_names_a_dropped_one():
    plan = Plan(request="r", servers=[_server(s) for s in ("a", "b", "c", "d")],
                workflow=[WorkflowStep(step=1, action="x", server="d"), WorkflowStep(step=2, action="y"),
                          WorkflowStep(step=3, action="z", server="b"), WorkflowStep(step=4, action="w", server="a")])
    plan = plan_within_limits(plan, max_steps=20, max_servers=2)
    assert [s.slug for s in plan.servers] == ["b", "d"]  # catalogue order kept
    assert [(s.step, s.server) for s in plan.workflow] == [(1, "d"), (2, None), (3, "b")]
    assert "at most 2 servers" in plan.notes[0]


def test_zero_means_no_limit():
    plan = plan_within_limits(_plan(50, 12), max_steps=0, max_servers=0)
    assert len(plan.workflow) == 50 and len(plan.servers) == 12 and not plan.notes
