"""What can go wrong talking to a broker, whichever broker it is (B1-B5, X4, X6).

Every `Broker` implementation maps its transport's failures onto these; the retryable ones
are `RetryableError`s, so the one retry policy in `common.retry` repeats them.
"""

from tecl_pipeline.common.retry import RetryableError
from tecl_pipeline.core.errors import RefusedToTrade


class BrokerError(Exception):
    """The broker refused or failed a request."""


class RetryableBrokerError(BrokerError, RetryableError):
    """Worth trying again later: rate limits, 5xx, maintenance, timeouts on reads."""


class RateLimitedError(RetryableBrokerError):
    """HTTP 429; `retry_after` from the Retry-After header when the broker sent one (B1)."""


class BrokerUnavailableError(RetryableBrokerError):
    """5xx, maintenance, connection refused or a read timeout (B2, B8)."""


class OutcomeUnknownError(BrokerError):
    """A write (order submit or cancel) whose answer never arrived: it may or may not have
    happened. Never retried blindly; the order is looked up by client order id first (B5)."""


class AuthError(BrokerError):
    """401/403: the credentials were refused (B4, X6)."""


class DataEntitlementError(BrokerError, RefusedToTrade):
    """403: the account's market data plan does not include what was asked (Alpaca's free
    Basic plan and SIP data from the last 15 minutes). Not a refused key, and asking again
    changes nothing: no trustworthy price, so the session is refused, naming the fix."""


class NotFoundError(BrokerError):
    """404: no such order, asset or position."""


class MalformedResponseError(BrokerError):
    """The broker answered, but not with the shape it documents (B3), or with an error body
    under a success status (X4). Never read as success."""


class MalformedReadError(MalformedResponseError, RetryableBrokerError):
    """A read whose answer could not be used. Reading changes nothing at the broker, so it
    is asked again under the retry policy like any other failed call (a garbled answer while
    an order is being followed must not abandon it); when the policy gives up, it is still
    the loud `MalformedResponseError` (B3)."""


class OrderStateError(BrokerError):
    """One of this pipeline's orders is in a state it does not handle: a status the broker
    does not document, or replaced by another order (this pipeline never replaces one). Not
    a garbled answer: asking again shows the same order, so it is never retried, and no
    order follows in the session until a person has looked at the broker."""


class DuplicateClientOrderIdError(BrokerError):
    """An order with this client_order_id was already sent: the order exists, do not resend."""


class OrderRejectedError(BrokerError):
    """The broker rejected the order for a reason it named (buying power, not tradable, ...)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
