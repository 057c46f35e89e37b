"""The server's one interceptor: runs the stages around every call on worker threads,
while the event loop (grpc.aio) does all the waiting on callers, so an idle or slow
caller holds no thread.

For every method that needs credentials, in this order:

1. the stages' `before` hooks (tracing, authentication) on the loop, from metadata only:
   grpc is told the method takes a stream of raw bytes, so the request has not been
   read, let alone parsed (beyond HTTP/2's flow-control window, nothing of it has been
   accepted);
2. the call takes the caller's call slot, a stream its stream slot (`StreamSlots`: all
   streams, per principal), a bulk call (`CallLimits.bulk_methods`: BatchCreateSubjects)
   is first asked whether its caller may make it at all (`admit_bulk`) and takes one of
   the caller's bulk slots; or it is refused (RESOURCE_EXHAUSTED, PERMISSION_DENIED),
   audited;
3. the one request message is read, waiting at most the idle timeout, its size checked
   against the method's own limit; a bulk call waits its turn (`max_bulk_calls` at once
   per process) and a large request for one of `max_large_requests` places, on the loop
   holding no thread; then it is parsed on a worker, its maps counted;
4. the handler runs on a worker; a stream's items are produced one at a time on a
   worker and written from the loop: a write the caller does not take within the idle
   timeout, or a stream older than the maximum age, ends the stream (DEADLINE_EXCEEDED);
5. the `after` hooks (audit, error mapping) and the finish hooks on a worker (for a
   unary call in the same step as its handler), then the status.

A call whose caller goes away mid-step still finishes that step and runs its `after`
hooks: every call is audited. Health checks and (in the embedded default) reflection
are public: they run on the loop, and their streams count against `max_public_streams`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

import audit
from vault.api.errors import call_status, rich_status
from vault.api.idempotency import Idempotency
from vault.api.interceptors import CallInfo, RpcCall, Stage
from vault.api.limits import (
    CallCancelledError,
    CallLimits,
    CallTimeoutError,
    MalformedWireError,
    StreamSlots,
    map_violations,
)
from vault.api.page_tokens import PageTokens
from vault.audit_trail import deferred_appends
from vault.context import CallContext, current_call
from vault.errors import (
    FieldViolation,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
)
from vault.principal import Principal

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[..., Any]
_END = object()
# Wrapped handlers kept (one per registered method; the bound only guards the memory).
_MAX_WRAPPED = 1024


class _Malformed:
    """Stands in for a request whose bytes did not parse (invalid wire format, or a
    string field that is not UTF-8), so the call is authenticated, refused with
    INVALID_ARGUMENT and audited like any other instead of grpc's unaudited INTERNAL."""


MALFORMED = _Malformed()


def _parse(deserialize: Callable[[bytes], Any] | None, data: bytes) -> Any:
    if deserialize is None:
        return data
    try:
        return deserialize(data)
    except Exception:  # noqa: BLE001 - any parse failure is the caller's bad input
        return MALFORMED


@functools.cache
def _request_type(method: str) -> Descriptor | None:
    """The request message type of `/package.Service/Method`, from the descriptor pool."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", "."))
    except KeyError:
        return None
    return found.input_type


def _malformed_request() -> InvalidArgumentError:
    return InvalidArgumentError(
        [FieldViolation("request", "not a valid message of this method's request type")],
        "malformed request",
    )


@dataclass
class _Run:
    """One call in flight: what the stages see, the contextvars its worker steps run
    in (one copy per call, entered by one thread at a time), and how far it got."""

    rpc: RpcCall
    context: grpc.aio.ServicerContext
    ctx: contextvars.Context
    started: float = field(default_factory=time.monotonic)
    entered: list[Stage] = field(default_factory=list)
    cancelled: bool = False
    exited: bool = False
    status: Any = None

    def caller_left(self) -> None:
        self.cancelled = True
        self.rpc.context.active = False
        self.rpc.call.reason = self.rpc.call.reason or "cancelled by the caller"

    @property
    def principal(self) -> Principal | None:
        return self.rpc.call.principal


def _next_item(items: Iterator[Any]) -> tuple[Any, BaseException | None]:
    try:
        return next(items, _END), None
    except Exception as exc:  # noqa: BLE001 - mapped to a status like any handler error
        return _END, exc


class VaultInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs the stage chain around every method not in `public_prefixes`."""

    def __init__(
        self,
        stages: Sequence[Stage],
        pool: Executor,
        limits: CallLimits,
        public_prefixes: tuple[str, ...],
        *,
        idempotency: Idempotency | None = None,
        page_tokens: PageTokens | None = None,
        on_loop: frozenset[str] = frozenset(),
        admit_bulk: Callable[[CallContext], object] | None = None,
    ) -> None:
        self._stages = tuple(stages)
        self._on_loop = on_loop
        self._admit_bulk = admit_bulk
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._pool = pool
        self._limits = limits
        self._public = public_prefixes
        self.slots = StreamSlots(limits)
        self._large = asyncio.Semaphore(limits.max_large_requests)
        self._bulk = asyncio.Semaphore(limits.max_bulk_calls)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        if isinstance(method, bytes):
            method = method.decode()
        # The wrapper depends only on the method and its registered handler: built once.
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        if method.startswith(self._public):
            wrapped = self._public_handler(handler)
        else:
            wrapped = self._private_handler(method, handler)
        if len(self._wrapped) < _MAX_WRAPPED:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    # Public methods: health, and reflection where it is public ------------------------
    def _public_handler(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        if handler.unary_stream is not None:
            watch = handler.unary_stream

            async def one_in_many_out(request: Any, context: grpc.aio.ServicerContext) -> None:
                await self._public_stream(watch, request, context)

            return grpc.unary_stream_rpc_method_handler(
                one_in_many_out, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream is not None:
            reflect = handler.stream_stream

            async def many_in_many_out(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
            ) -> None:
                await self._public_stream(reflect, self._arriving(requests), context)

            return grpc.stream_stream_rpc_method_handler(
                many_in_many_out, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_unary is not None:
            check = handler.unary_unary
            parse = handler.request_deserializer

            async def one_in_one_out(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                return await self._public_unary(check, parse, context)

            return grpc.stream_unary_rpc_method_handler(
                one_in_one_out, None, handler.response_serializer
            )
        return None

    async def _public_unary(
        self,
        behavior: Handler,
        parse: Callable[[bytes], Any] | None,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        """A health check: its small request read within a short time, then answered
        on the loop; at most `max_public_calls` at once (their requests are read
        before anyone is known)."""
        refused = self.slots.take_public_call()
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused.message)
        try:
            limits = self._limits
            try:
                async with asyncio.timeout(limits.public_request_timeout_seconds):
                    data = await context.read()
            except TimeoutError:
                await context.abort(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"no request message within {limits.public_request_timeout_seconds:g} s",
                )
            if not isinstance(data, bytes) or len(data) > limits.max_public_request_bytes:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"one request message of at most {limits.max_public_request_bytes} bytes",
                )
            request = _parse(parse, data)
            if request is MALFORMED:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed request")
            return await behavior(request, context)
        finally:
            self.slots.give_back_public_call()

    async def _public_stream(
        self, behavior: Handler, argument: Any, context: grpc.aio.ServicerContext
    ) -> None:
        refused = self.slots.take(None)
        if refused is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refused.message)
        try:
            await asyncio.wait_for(
                self._relay(behavior(argument, context), context), self._limits.max_age_seconds
            )
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, self._too_old().message)
        except CallTimeoutError as exc:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, exc.message)
        finally:
            self.slots.give_back(None)

    async def _relay(self, produced: Any, context: grpc.aio.ServicerContext) -> None:
        """Run an async handler: await it, or write what its generator yields."""
        if inspect.isasyncgen(produced):
            async for item in produced:
                timeout = self._limits.idle_timeout_seconds
                try:
                    async with asyncio.timeout(timeout):
                        await context.write(item)
                except TimeoutError:
                    raise self._not_read() from None
        elif inspect.isawaitable(produced):
            await produced

    async def _arriving(self, requests: AsyncIterator[T]) -> AsyncIterator[T]:
        """`requests`, each waited for at most the idle timeout."""
        pending = aiter(requests)
        while True:
            try:
                async with asyncio.timeout(self._limits.idle_timeout_seconds):
                    item = await anext(pending)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise CallTimeoutError(
                    f"no request message for {self._limits.idle_timeout_seconds:g} s"
                ) from None
            yield item

    @property
    def audit_timeout_seconds(self) -> float:
        return self._limits.audit_timeout_seconds

    def _not_read(self) -> CallTimeoutError:
        return CallTimeoutError(f"stream cut: not read for {self._limits.idle_timeout_seconds:g} s")

    def _too_old(self) -> CallTimeoutError:
        return CallTimeoutError(
            f"stream cut at its maximum age of {self._limits.max_age_seconds:g} s"
        )

    # Methods that need credentials ----------------------------------------------------
    def _private_handler(
        self, method: str, handler: grpc.RpcMethodHandler
    ) -> grpc.RpcMethodHandler | None:
        limit = self._limits.request_bytes(method)
        parse = handler.request_deserializer
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def one_in_one_out(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                return await self._unary(method, unary, parse, limit, context)

            # Declared request-streaming so that grpc reads nothing before we ask.
            return grpc.stream_unary_rpc_method_handler(
                one_in_one_out, None, handler.response_serializer
            )
        if handler.unary_stream is not None:
            stream = handler.unary_stream

            async def one_in_many_out(requests: Any, context: grpc.aio.ServicerContext) -> None:
                await self._stream(method, stream, parse, limit, context)

            return grpc.stream_stream_rpc_method_handler(
                one_in_many_out, None, handler.response_serializer
            )
        if handler.stream_stream is not None:  # reflection, behind authentication
            bidi = handler.stream_stream

            async def many_in_many_out(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
            ) -> None:
                await self._bidi(method, bidi, requests, context)

            return grpc.stream_stream_rpc_method_handler(
                many_in_many_out, parse, handler.response_serializer
            )
        return None  # no client-streaming method is served: refused as unimplemented

    def _begin(self, method: str, context: grpc.aio.ServicerContext) -> _Run:
        info = CallInfo(context)
        call = CallContext(method=method, request_id=uuid.uuid4().hex, caller_address=info.peer())
        ctx = contextvars.copy_context()
        ctx.run(current_call.set, call)
        return _Run(RpcCall(method, None, info, call), context, ctx)

    async def _step(self, run: _Run, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on a worker in the call's context. If the caller goes away meanwhile
        the step still finishes (its work and its audit entry are not cut in half)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, partial(run.ctx.run, fn, *args))
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                run.caller_left()

    def _enter(self, run: _Run) -> BaseException | None:
        try:
            for stage in self._stages:
                run.entered.append(stage)
                stage.before(run.rpc)
        except Exception as exc:  # noqa: BLE001 - handed to the after hooks, then mapped
            return exc
        return None

    def _exit(self, run: _Run, exc: BaseException | None) -> None:
        """The `after` hooks, the status for `exc` (kept on `run`), the finish hooks."""
        rpc = run.rpc
        run.exited = True
        try:
            for stage in reversed(run.entered):
                exc = stage.after(rpc, exc)
            if exc is not None:
                run.status = rich_status(exc, rpc.call.request_id, self._limits.max_violations)
        finally:
            for hook in reversed(rpc.on_finish):
                hook()

    async def _end(self, run: _Run, exc: BaseException | None) -> None:
        if not run.exited:
            await self._step(run, self._exit, run, exc)
        if run.status is not None and not run.cancelled and not run.context.done():
            await run.context.abort_with_status(call_status(run.status))

    def _complete(
        self, run: _Run, behavior: Handler, parse: Callable[[bytes], Any] | None, data: bytes
    ) -> Any:
        """A unary call's handler and its `after` hooks, in one step on a worker."""
        response, exc = self._invoke(run, behavior, parse, data)
        self._exit(run, exc)
        return response

    async def _on_the_loop(
        self, run: _Run, behavior: Handler, parse: Callable[[bytes], Any] | None, data: bytes
    ) -> Any:
        """A short read (`on_loop`): handler and `after` hooks run here, on the loop,
        without the two thread hand-offs of `_step`, and the call's audit entries are
        handed to group commit without waiting (`deferred_appends`). The answer (or the
        status) leaves only once every entry is durable; if one is not, the call fails
        closed with UNAVAILABLE, as it does when the domain waits itself."""
        pending: list[audit.PendingAppend] = []
        response = run.ctx.run(self._complete_deferred, run, behavior, parse, data, pending)
        if pending and not await self._durable(run, pending):
            log.error("audit log unavailable; failing the call closed")
            run.status = rich_status(
                UnavailableError("audit log unavailable"),
                run.rpc.call.request_id,
                self._limits.max_violations,
            )
            return None
        return response

    def _complete_deferred(
        self,
        run: _Run,
        behavior: Handler,
        parse: Callable[[bytes], Any] | None,
        data: bytes,
        pending: list[audit.PendingAppend],
    ) -> Any:
        token = deferred_appends.set(pending)
        try:
            return self._complete(run, behavior, parse, data)
        finally:
            deferred_appends.reset(token)

    async def _durable(self, run: _Run, pending: list[audit.PendingAppend]) -> bool:
        """Wait (on the loop) until every entry of `pending` is committed; False if one
        failed or they took longer than `audit_timeout_seconds`. A caller who leaves
        meanwhile does not cut the wait short."""
        loop = asyncio.get_running_loop()
        left = [len(pending)]
        settled = loop.create_future()

        def one_settled() -> None:  # on the loop
            left[0] -= 1
            if left[0] == 0 and not settled.done():
                settled.set_result(None)

        def from_writer() -> None:  # on the writer's thread
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(one_settled)

        for entry in pending:
            entry.when_done(from_writer)
        deadline = loop.time() + self._limits.audit_timeout_seconds
        while not settled.done():
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(settled)
            except asyncio.CancelledError:
                run.caller_left()
            except TimeoutError:
                return False
        try:
            for entry in pending:
                entry.result()
        except audit.AuditUnavailableError:
            return False
        return True

    async def _receive(self, run: _Run, limit: int) -> tuple[bytes, BaseException | None]:
        """The call's one request message, as bytes, once the caller is known."""
        if run.cancelled:
            return b"", CallCancelledError("cancelled by the caller")
        idle = self._limits.idle_timeout_seconds
        try:
            async with asyncio.timeout(idle):
                data = await run.context.read()
        except asyncio.CancelledError:
            run.caller_left()
            return b"", CallCancelledError("cancelled by the caller")
        except TimeoutError:
            run.rpc.call.reason = "request not sent in time"
            return b"", CallTimeoutError(f"no request message within {idle:g} s")
        if not isinstance(data, bytes):  # grpc.aio.EOF: the caller sent none
            return b"", _malformed_request()
        if len(data) > limit:
            run.rpc.call.reason = "request too large"
            return b"", ResourceExhaustedError(
                f"request of {len(data)} bytes; this method takes at most {limit}"
            )
        return data, None

    def _invoke(
        self, run: _Run, behavior: Handler, parse: Callable[[bytes], Any] | None, data: bytes
    ) -> tuple[Any, BaseException | None]:
        """Count the request's map entries on the wire, parse it, run the handler."""
        shape = _request_type(run.rpc.method)
        if shape is not None:
            limits = self._limits
            try:
                too_many = map_violations(
                    data, shape, limits.max_map_entries, limits.max_request_map_entries
                )
            except MalformedWireError:
                return None, _malformed_request()
            if too_many:
                run.rpc.call.reason = "too many map entries"
                return None, InvalidArgumentError(too_many, "too many map entries")
        request = _parse(parse, data)
        if request is MALFORMED:
            return None, _malformed_request()
        run.rpc.request = request
        try:
            return self._handle(run.rpc.call, request, lambda: behavior(request, run.context)), None
        except Exception as exc:  # noqa: BLE001 - mapped to a status by _exit
            return None, exc

    def _handle(self, call: CallContext, request: Any, handler: Callable[[], Any]) -> Any:
        """The handler, with the contract's conventions around it: page tokens opened
        and sealed (`page_tokens`), idempotency keys honoured (`idempotency`)."""
        pages = self._page_tokens
        binding = pages.open(call, request) if pages is not None else None
        idempotency = self._idempotency
        produced = handler() if idempotency is None else idempotency.run(call, request, handler)
        return produced if binding is None or pages is None else pages.seal(binding, produced)

    async def _guarded(
        self,
        run: _Run,
        body: Callable[[], Awaitable[BaseException | None]],
        stream: bool,
        bulk: bool = False,
    ) -> None:
        """Authenticate, take the caller's call (and stream, or bulk) slot, run `body`,
        end the call. The stream and bulk slots are given back before the status is sent
        (that send may wait behind data the caller does not read); the call slot only
        once the transport has ended the call."""
        # On the loop: the stages' `before` hooks only read metadata and verify a
        # signature (no I/O), and this spares a trip to a worker.
        exc = run.ctx.run(self._enter, run)
        principal = run.principal
        counted = streaming = queued = False
        if exc is None and principal is not None:
            exc = self._refused(run, self.slots.take_call(principal))
            counted = exc is None
            if exc is None and stream:
                exc = self._refused(run, self.slots.take(principal))
                streaming = exc is None
            if exc is None and bulk:
                exc = self._may_queue(run) or self._refused(run, self.slots.take_bulk(principal))
                queued = exc is None
        try:
            if exc is None:
                exc = await body()
            if streaming:
                streaming = False
                self.slots.give_back(principal)
            if queued and principal is not None:
                queued = False
                self.slots.give_back_bulk(principal)
            await self._end(run, exc)
        finally:
            if streaming:
                self.slots.give_back(principal)
            if queued and principal is not None:
                self.slots.give_back_bulk(principal)
            if counted and principal is not None:
                self.slots.give_back_call(principal)

    def _may_queue(self, run: _Run) -> BaseException | None:
        """The domain's answer to whether this caller may make the bulk call at all
        (`admit_bulk`, a policy decision recorded on the call), asked on the loop before
        the call takes a place in the queue: None, or why not."""
        if self._admit_bulk is None:
            return None
        try:
            run.ctx.run(self._admit_bulk, run.rpc.call)
        except Exception as exc:  # noqa: BLE001 - mapped to a status by _exit, audited
            return exc
        return None

    @staticmethod
    def _refused(run: _Run, refusal: BaseException | None) -> BaseException | None:
        if refusal is not None:
            run.rpc.call.deny("too many calls, streams or batches in flight")
        return refusal

    async def _unary(
        self,
        method: str,
        behavior: Handler,
        parse: Callable[[bytes], Any] | None,
        limit: int,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        run = self._begin(method, context)
        answer: list[Any] = [None]
        on_loop = method in self._on_loop
        bulk = method in self._limits.bulk_methods

        async def body() -> BaseException | None:
            data, exc = await self._receive(run, limit)
            if exc is not None:
                return exc
            small = len(data) <= self._limits.max_request_bytes
            if on_loop and small and not bulk:
                answer[0] = await self._on_the_loop(run, behavior, parse, data)
                return None
            # Bulk calls `max_bulk_calls` at a time (`CallLimits.bulk_methods`), waiting
            # their turn before the large-request gate so as not to hold its permits;
            # only so many large requests parsed and held at once.
            gates = ([self._bulk] if bulk else []) + ([] if small else [self._large])
            if not gates:
                answer[0] = await self._step(run, self._complete, run, behavior, parse, data)
                return None
            async with contextlib.AsyncExitStack() as held:
                for gate in gates:
                    if (exc := await self._admitted(run, gate, held)) is not None:
                        return exc
                answer[0] = await self._step(run, self._complete, run, behavior, parse, data)
            return None

        await self._guarded(run, body, stream=False, bulk=bulk)
        return answer[0]

    async def _admitted(
        self, run: _Run, gate: asyncio.Semaphore, held: contextlib.AsyncExitStack
    ) -> BaseException | None:
        """Wait for one of `gate`'s permits (released with `held`), `max_queue_seconds`
        at most. A caller who goes away while queued ends the call as cancelled, and one
        still queued then as UNAVAILABLE (retry later), audited like any other."""
        wait = self._limits.max_queue_seconds
        try:
            async with asyncio.timeout(wait):
                await held.enter_async_context(gate)
        except asyncio.CancelledError:
            run.caller_left()
            return CallCancelledError("cancelled by the caller")
        except TimeoutError:
            return UnavailableError(f"the server is busy: no turn within {wait:g} s")
        return None

    async def _stream(
        self,
        method: str,
        behavior: Handler,
        parse: Callable[[bytes], Any] | None,
        limit: int,
        context: grpc.aio.ServicerContext,
    ) -> None:
        run = self._begin(method, context)

        async def body() -> BaseException | None:
            data, exc = await self._receive(run, limit)
            if exc is None:
                items, exc = await self._step(run, self._invoke, run, behavior, parse, data)
                if exc is None:
                    exc = await self._pump(run, items)
            return exc

        await self._guarded(run, body, stream=True)

    async def _pump(self, run: _Run, items: Iterator[Any]) -> BaseException | None:
        """Produce the stream's items on a worker and write them from the loop."""
        loop_started = run.started
        try:
            while not run.cancelled:
                item, exc = await self._step(run, _next_item, items)
                if item is _END or run.cancelled:
                    return exc
                age_left = loop_started + self._limits.max_age_seconds - time.monotonic()
                if age_left <= 0:
                    return self._too_old()
                idle = self._limits.idle_timeout_seconds
                try:
                    async with asyncio.timeout(min(idle, age_left)):
                        await run.context.write(item)
                except asyncio.CancelledError:
                    run.caller_left()
                except TimeoutError:
                    run.rpc.call.reason = "stream not read"
                    return self._not_read() if age_left > idle else self._too_old()
                except Exception:  # noqa: BLE001 - the call is over (its caller or the server ended it)
                    run.rpc.call.reason = run.rpc.call.reason or "stream closed"
                    run.caller_left()
            return None
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                await self._step(run, close)

    async def _bidi(
        self,
        method: str,
        behavior: Handler,
        requests: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
    ) -> None:
        run = self._begin(method, context)

        async def body() -> BaseException | None:
            run.rpc.call.allow("any authenticated caller", "")
            return await self._relay_for(run, behavior(self._arriving(requests), context))

        await self._guarded(run, body, stream=True)

    async def _relay_for(self, run: _Run, produced: Any) -> BaseException | None:
        try:
            await asyncio.wait_for(self._relay(produced, run.context), self._limits.max_age_seconds)
        except TimeoutError:
            return self._too_old()
        except CallTimeoutError as exc:
            return exc
        except asyncio.CancelledError:
            run.caller_left()
        except Exception as exc:  # noqa: BLE001 - mapped to a status by _exit
            return exc
        return None
