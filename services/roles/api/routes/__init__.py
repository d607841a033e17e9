"""The REST routes of the contract, one module per resource: decode, call a use case, encode."""

from services.roles.api.routes.agents import AgentController
from services.roles.api.routes.executions import ExecutionController
from services.roles.api.routes.hooks import webhook
from services.roles.api.routes.processes import ProcessController
from services.roles.api.routes.secrets import SecretController
from services.roles.api.routes.signals import SignalController

ROUTES = [
    ProcessController,
    ExecutionController,
    AgentController,
    SecretController,
    SignalController,
    webhook,
]
