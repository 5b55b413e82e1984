"""An Alpaca-compatible broker simulator: the trading and market-data REST subset the pipeline
uses, served over HTTP on loopback so that the real alpaca-py client (and the one Alpaca
adapter) is exercised for real, with faults injected at the wire (R3).

- `engine.BrokerSimulator`: the account, orders, fills and simulated clock (no HTTP).
- `persist`: the account in a JSON file (`book_path=`), shared across processes.
- `faults`: seeded fault plans (429, 5xx, timeouts, lost acknowledgements, ...).
- `server.SimulatorServer`: Alpaca's paths plus admin endpoints under /_sim/; `serve` backs
  the `tecl simulator` command.
"""

from tecl_pipeline.simulator.engine import BrokerSimulator
from tecl_pipeline.simulator.faults import FaultKind, FaultPlan, FaultPlanError, FaultRule
from tecl_pipeline.simulator.model import AccountKind, DataPlan, FillMode
from tecl_pipeline.simulator.persist import BookFileError
from tecl_pipeline.simulator.server import SimulatorServer, serve

__all__ = (
    "AccountKind",
    "BookFileError",
    "BrokerSimulator",
    "DataPlan",
    "FaultKind",
    "FaultPlan",
    "FaultPlanError",
    "FaultRule",
    "FillMode",
    "SimulatorServer",
    "serve",
)
