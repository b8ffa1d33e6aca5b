"""Request and response models of the REST API, one module per route group (see core.py)."""
from .core import ApiModel, Contract, Id, Name, Paging, QueryBool, Timestamp, contract, contract_of

__all__ = ["ApiModel", "Contract", "Id", "Name", "Paging", "QueryBool", "Timestamp", "contract", "contract_of"]
