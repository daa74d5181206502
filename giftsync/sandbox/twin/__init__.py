"""Shared machinery of the three twins: HTTP server, fault injection, request log, state file."""
from .faults import FaultPlan, FaultRule
from .http import Route, TwinApp, TwinRequest, TwinResponse, TwinServer, json_response
from .state import StateFile

__all__ = ["FaultPlan", "FaultRule", "Route", "TwinApp", "TwinRequest", "TwinResponse",
           "TwinServer", "json_response", "StateFile"]
