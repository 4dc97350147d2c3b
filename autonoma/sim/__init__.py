"""The simulated Anthropic Messages API and its scenario player (see README.md here)."""

from autonoma.sim.scenario import (
    Fault,
    RequestInfo,
    Rule,
    Scenario,
    ScenarioError,
    Step,
    ToolCall,
    Window,
    describe_request,
    load_scenario,
    loads_scenario,
    parse_scenario,
    toml_value,
)
from autonoma.sim.server import RecordedRequest, SimServer

__all__ = [
    "Fault",
    "RecordedRequest",
    "RequestInfo",
    "Rule",
    "Scenario",
    "ScenarioError",
    "SimServer",
    "Step",
    "ToolCall",
    "Window",
    "describe_request",
    "load_scenario",
    "loads_scenario",
    "parse_scenario",
    "toml_value",
]
