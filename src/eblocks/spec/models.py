"""The mesh spec (`mesh.yaml`) as frozen pydantic models.

Shape::

    apiVersion: eblocks/v1
    mesh: NAME
    defaults: {replicas, timeout, retries, max_body, drain, ready_timeout, host, access_log}
    blocks:   {NAME: {handler | app | external, replicas, port, timeout, retries, access_log, env,
               labels, resources}}
    patterns: {NAME: {pipeline: [BLOCK_OR_PATTERN, ...]}
                    | {manager-worker: {manager, worker, workers, balancer, queue, concurrency,
                                       attempts}}
                    | {divide-conquer: {divide, worker, combine, attempts, parallel}}}
    policies: {}
    discovery: {mode: supervisor|gossip, key | key_file, seeds, dns, port, tunables}
    telemetry: {metrics, tracing: {sampling, exporter, endpoint}}
    security: {trust_domain, mtls, svid_ttl, key_type, tokens, end_user, authorization, anomaly}

Cross-references (unknown blocks, cycles) are checked in `check.py`, where the
error can point at the exact list item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from eblocks.balance.factory import BalancerName
from eblocks.spec.base import Frozen, Name
from eblocks.spec.gateway import Gateway
from eblocks.spec.policies import Policies, RetryPolicy
from eblocks.spec.units import Duration, Size, Timeout

if TYPE_CHECKING:
    from eblocks.discovery.swim import SwimConfig

__all__ = [
    "AnomalySpec",
    "AuthorizationSpec",
    "AuthzRule",
    "BlockSecurity",
    "BlockSettings",
    "BlockSpec",
    "Defaults",
    "DiscoverySpec",
    "DivideConquer",
    "DivideConquerSpec",
    "EndUserSpec",
    "ExternalSpec",
    "GossipTunables",
    "ManagerWorker",
    "ManagerWorkerSpec",
    "MeshSpec",
    "PatternSpec",
    "PipelineSpec",
    "Policies",
    "QueueSpec",
    "ResourceAmounts",
    "Resources",
    "RetryPolicy",
    "SecuritySpec",
    "TelemetrySpec",
    "TokenSpec",
    "TracingSpec",
    "WorkersSpec",
    "resolve_settings",
]

HandlerRef = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="`package.module:function`",
        examples=["handlers:clean"],
    ),
]


class Defaults(Frozen):
    """Settings every block inherits unless it sets its own."""

    replicas: int = Field(1, ge=1, le=256)
    timeout: Annotated[float, Timeout("leave it out for 30s")] = Field(
        30.0, description="overall deadline of one call, all tries"
    )
    retries: RetryPolicy = RetryPolicy()
    max_body: Size = Field(16 * 1024 * 1024, description="largest request body accepted")
    drain: Duration = Field(10.0, description="how long a stopping instance finishes requests")
    ready_timeout: Annotated[float, Timeout("leave it out for 30s")] = Field(
        30.0, description="how long `up` waits for readiness"
    )
    host: str = Field("127.0.0.1", description="address instances listen on")
    threads: int = Field(8, ge=1, le=256, description="executor threads for plain functions")
    balancer: BalancerName = Field("round_robin", description="how callers pick an instance")
    access_log: bool = Field(
        False, description="one JSON line per request in logs/<instance>.access.jsonl"
    )


def _quantity_text(value: Any) -> Any:
    """YAML reads ``cpu: 2`` or ``cpu: 0.5`` as numbers; Kubernetes wants the text."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$",
        description="a Kubernetes quantity: `500m` or `2` CPUs, `256Mi` or `1Gi` of memory",
        examples=["250m", "512Mi"],
    ),
]


class ResourceAmounts(Frozen):
    """CPU and memory of one instance; unset fields keep the renderer's defaults."""

    cpu: Quantity | None = Field(None, description="CPU (`250m` is a quarter of a core)")
    memory: Quantity | None = Field(None, description="memory (`256Mi`)")


class Resources(Frozen):
    """What one instance asks for and may use (rendered into Kubernetes containers)."""

    requests: ResourceAmounts = Field(ResourceAmounts(), description="reserved for scheduling")
    limits: ResourceAmounts = Field(ResourceAmounts(), description="hard caps")


MtlsMode = Literal["strict", "permissive", "ingress", "disable"]
Verdict = Literal["allow", "deny"]


class BlockSecurity(Frozen):
    """A block's own security settings over the mesh's (docs/security.md)."""

    mtls: MtlsMode | None = Field(None, description="mTLS mode of this block's port")
    default: Verdict | None = Field(
        None, description="authorization when no rule matches a request to this block"
    )


class ExternalSpec(Frozen):
    """A program not written for Eblocks, run behind the sidecar proxy (docs/sidecar.md).

    ``eblocks up`` starts ``eblocks proxy ... -- command``: the proxy is the
    block (mTLS, authorization, metrics, tracing, access log) and forwards to
    the program at ``127.0.0.1:port``; the program calls other blocks through
    its ``upstreams``, plaintext local ports whose calls take the mesh's client stack.
    """

    command: tuple[str, ...] = Field(
        min_length=1, description="the program and its arguments (run in the spec's folder)"
    )
    port: int = Field(ge=1, le=65535, description="the port the program listens on (127.0.0.1)")
    protocol: Literal["http", "tcp"] = Field(
        "http", description="`http` (HTTP/1.1 and WebSocket) or `tcp` (opaque bytes, mTLS tunnel)"
    )
    upstreams: dict[Name, int] = Field(
        default_factory=dict,
        description="block or pattern -> the 127.0.0.1 port the program reaches it on",
    )
    ready_timeout: Annotated[float, Timeout("leave it out for defaults.ready_timeout")] | None = (
        Field(None, description="how long the proxy waits for the port (default: `ready_timeout`)")
    )

    @model_validator(mode="after")
    def _ports(self) -> ExternalSpec:
        for name, port in self.upstreams.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"upstream {name!r}: port must be 1..65535, got {port}")
            if port == self.port:
                raise ValueError(f"upstream {name!r} uses the program's own port {port}")
        ports = list(self.upstreams.values())
        if len(set(ports)) != len(ports):
            raise ValueError("two upstreams share a local port")
        return self


class BlockSpec(Frozen):
    """A service kind: the user's handler and how many instances run it."""

    handler: HandlerRef | None = Field(
        None, description="`async def h(msg, ctx)` or plain `def`; a manager may leave it out"
    )
    app: HandlerRef | None = Field(None, description="function returning an aiohttp Application")
    external: ExternalSpec | None = Field(
        None, description="a program of any language run behind the sidecar proxy"
    )
    description: str = ""
    replicas: int | None = Field(None, ge=1, le=256, description="instances to run")
    port: int | None = Field(None, ge=1, le=65535, description="fixed port (one replica only)")
    timeout: Annotated[float, Timeout("leave it out for defaults.timeout")] | None = Field(
        None, description="deadline of a call to this block"
    )
    retries: RetryPolicy | None = Field(None, description="retries of calls to this block")
    max_body: Size | None = Field(None, description="largest request body accepted")
    drain: Duration | None = Field(None, description="how long a stopping instance drains")
    threads: int | None = Field(None, ge=1, le=256, description="executor threads")
    balancer: BalancerName | None = Field(None, description="how callers pick an instance")
    access_log: bool | None = Field(None, description="write an access log (JSON lines)")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment")
    labels: dict[str, str] = Field(default_factory=dict, description="labels of its endpoints")
    resources: Resources | None = Field(
        None, description="CPU/memory requests and limits per instance (`eblocks render`)"
    )
    security: BlockSecurity | None = Field(None, description="mTLS mode, authorization default")
    gateway: Gateway | None = Field(
        None, description="an ingress or egress gateway whose PM Eblocks provides"
    )

    @model_validator(mode="after")
    def _one_entry_point(self) -> BlockSpec:
        chosen = [
            k for k in ("handler", "app", "external", "gateway") if getattr(self, k) is not None
        ]
        if len(chosen) != 1:
            alone = " (only the manager of a manager-worker pattern may set none)"
            raise ValueError(
                "set exactly one of 'handler', 'app', 'external' or 'gateway'"
                + ("" if chosen else alone)
            )
        return self


class PipelineSpec(Frozen):
    """Pipes and filters: each stage handles, then forwards to the next."""

    pipeline: tuple[Name, ...] = Field(min_length=1, description="stages: blocks or patterns")
    description: str = ""

    @field_validator("pipeline", mode="before")
    @classmethod
    def _stages_listed(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of stages such as [a, b] (got {value!r})")
        if not value:
            raise ValueError("a pipeline needs at least one stage, as in [a, b]")
        return value

    @property
    def stages(self) -> tuple[str, ...]:
        return self.pipeline


class QueueSpec(Frozen):
    """The manager's bounded queue: tasks waiting for a free worker."""

    max: int = Field(64, ge=0, le=100_000, description="waiting tasks; past it, 429 + retry-after")


class WorkersSpec(Frozen):
    """Autoscaling of a manager-worker pool: how many worker instances, by the load.

    The manager aims at ``target_inflight`` tasks (running and queued) per
    worker: it grows the pool at once and shrinks it only after the load has
    stayed low for ``scale_down_delay`` (as Kubernetes' HPA stabilisation window).
    """

    min: int = Field(1, ge=1, le=256, description="fewest worker instances")
    max: int = Field(4, ge=1, le=256, description="most worker instances")
    target_inflight: float | None = Field(
        None, gt=0, description="tasks in flight or queued per worker; default: `concurrency`"
    )
    scale_up_delay: Duration = Field(
        0.0, le=3600, description="a higher count must hold this long before the pool grows"
    )
    scale_down_delay: Duration = Field(
        30.0, le=3600, description="a lower count must hold this long before the pool shrinks"
    )
    forecast: Literal["none", "holt"] = Field(
        "none", description="`holt`: grow ahead of a rising load (Holt's linear trend)"
    )
    horizon: Duration = Field(
        2.0, le=600, description="how far ahead `holt` looks (about a worker's start-up time)"
    )

    @model_validator(mode="after")
    def _bounds(self) -> WorkersSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class ManagerWorker(Frozen):
    """The body of a manager-worker pattern."""

    manager: Name = Field(description="block whose instances queue and dispatch the tasks")
    worker: Name = Field(description="block whose instances run the tasks")
    workers: WorkersSpec | None = Field(
        None, description="autoscale the worker block between min and max (default: `replicas`)"
    )
    balancer: BalancerName = Field("p2c", description="how the manager picks a worker instance")
    queue: QueueSpec = Field(QueueSpec(), description="bounded queue in front of the workers")
    concurrency: int = Field(2, ge=1, le=1024, description="tasks in flight per worker instance")
    attempts: int = Field(3, ge=1, le=10, description="tries of one task, on different workers")

    @property
    def target_inflight(self) -> float:
        """Tasks per worker the autoscaler aims at: ``workers.target_inflight`` or concurrency."""
        own = self.workers.target_inflight if self.workers is not None else None
        return own if own is not None else float(self.concurrency)


class ManagerWorkerSpec(Frozen):
    """Manager-worker: a manager queues tasks and dispatches each to a worker instance."""

    manager_worker: ManagerWorker = Field(alias="manager-worker")
    description: str = ""


class DivideConquer(Frozen):
    """The body of a divide-conquer pattern."""

    divide: Name = Field(description="block that splits a message into parts (a JSON array)")
    worker: Name = Field(description="block or pattern that handles one part")
    combine: Name = Field(description="block or pattern that merges the results, in order")
    attempts: int = Field(3, ge=1, le=10, description="tries of one part")
    parallel: int = Field(16, ge=1, le=4096, description="parts in flight at once per message")


class DivideConquerSpec(Frozen):
    """Divide & conquer: split, handle the parts in parallel, combine in order."""

    divide_conquer: DivideConquer = Field(alias="divide-conquer")
    description: str = ""


MANAGER_HANDLER = "eblocks.workload.manager:relay"
"""The handler a manager block without one of its own gets."""

PATTERN_KINDS: dict[str, type[BaseModel]] = {
    "pipeline": PipelineSpec,
    "manager-worker": ManagerWorkerSpec,
    "divide-conquer": DivideConquerSpec,
}
"""Each pattern kind by the key that selects it in YAML."""


def _pattern_kind(value: Any) -> str | None:
    """The union tag of a pattern: its model's name, when exactly one kind key is set."""
    if isinstance(value, BaseModel):
        return type(value).__name__
    if not isinstance(value, dict):
        return None
    kinds = [model for key, model in PATTERN_KINDS.items() if key in value]
    return kinds[0].__name__ if len(kinds) == 1 else None


# Tagged by model name, not by kind key: pydantic puts the tag into error
# locations, and a tag that is no YAML key is easy to tell apart from one.
PatternSpec = Annotated[
    Annotated[PipelineSpec, Tag("PipelineSpec")]
    | Annotated[ManagerWorkerSpec, Tag("ManagerWorkerSpec")]
    | Annotated[DivideConquerSpec, Tag("DivideConquerSpec")],
    Discriminator(
        _pattern_kind,
        custom_error_type="pattern_kind",
        custom_error_message=f"a pattern sets exactly one of: {', '.join(PATTERN_KINDS)}",
    ),
]


SeedAddr = Annotated[
    str,
    Field(
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):[0-9]{1,5}$",
        description="`host:port` of a gossip member (`[v6]:port` for IPv6)",
        examples=["10.0.0.2:7946"],
    ),
]


class GossipTunables(Frozen):
    """Overrides of the gossip protocol's tunables; unset fields keep the defaults."""

    probe_interval: Duration | None = Field(None, description="one probe per period (0.5s)")
    probe_timeout: Duration | None = Field(None, description="direct ack wait (0.2s)")
    indirect_probes: int | None = Field(None, ge=1, le=16, description="PING_REQ fan-out (3)")
    suspicion_mult: float | None = Field(None, gt=0, description="suspicion timeout factor (1.5)")
    suspicion_min: Duration | None = Field(None, description="shortest suspicion (1s)")
    gossip_interval: Duration | None = Field(None, description="extra gossip period (0.1s)")
    gossip_fanout: int | None = Field(None, ge=1, le=16, description="members per gossip (3)")
    retransmit_mult: int | None = Field(None, ge=1, le=16, description="sends per update (4)")
    sync_interval: Duration | None = Field(None, description="push-pull period (30s)")
    reap_after: Duration | None = Field(None, description="forget DEAD/LEFT after (60s)")
    max_packet: int | None = Field(None, ge=512, le=65000, description="largest packet (1400)")


class DiscoverySpec(Frozen):
    """How instances find each other: the local supervisor's file or gossip membership."""

    mode: Literal["supervisor", "gossip"] = Field(
        "supervisor", description="`supervisor` (one machine) or `gossip` (SWIM, no registry)"
    )
    key: str | None = Field(
        None, min_length=16, description="gossip HMAC key, at least 16 bytes; prefer key_file"
    )
    key_file: str | None = Field(
        None, description="file of keys, one a line, the first signs (relative to the spec)"
    )
    key_window: Duration = Field(
        300.0, description="how long a key removed from the key file is still accepted"
    )
    seeds: tuple[SeedAddr, ...] = Field((), description="static seeds, `host:port`")
    dns: str | None = Field(
        None, description="a name resolving to many seed addresses (a headless Service)"
    )
    dns_port: int = Field(7946, ge=1, le=65535, description="gossip port of the `dns` seeds")
    port: int = Field(0, ge=0, le=65535, description="gossip UDP port (0: any free port)")
    leave_drain: Duration = Field(0.5, description="gossip LEFT this long before draining")
    tunables: GossipTunables = Field(GossipTunables(), description="protocol overrides")

    @model_validator(mode="after")
    def _consistent(self) -> DiscoverySpec:
        if self.key is not None and self.key_file is not None:
            raise ValueError("set at most one of 'key' or 'key_file'")
        if self.key is not None and len(self.key.encode()) < 16:
            raise ValueError("'key' must be at least 16 bytes")
        for seed in self.seeds:
            if not 1 <= int(seed.rsplit(":", 1)[1]) <= 65535:
                raise ValueError(f"seed {seed!r}: port must be 1..65535")
        if self.mode == "supervisor":
            used = [n for n in ("key", "key_file", "dns") if getattr(self, n) is not None]
            used += ["seeds"] if self.seeds else []
            if used:
                raise ValueError(f"{', '.join(used)} only apply to 'mode: gossip'")
        self.swim_config()  # probe_timeout < probe_interval and the like
        return self

    def swim_config(self) -> SwimConfig:
        """The protocol configuration: the defaults with ``tunables`` over them."""
        from eblocks.discovery.swim import SwimConfig

        return SwimConfig(**self.tunables.model_dump(exclude_none=True))


class TracingSpec(Frozen):
    """OpenTelemetry tracing of every instance: sampling and where spans go."""

    sampling: float = Field(
        0.0, ge=0.0, le=1.0, description="share of new traces recorded (a caller's choice wins)"
    )
    exporter: Literal["none", "otlp", "console", "file"] = Field(
        "none", description="`otlp` (HTTP), `console` (stderr) or `file` (logs/<inst>.spans.jsonl)"
    )
    endpoint: str | None = Field(
        None, description="OTLP/HTTP traces URL (default: the OTEL_EXPORTER_OTLP_* environment)"
    )


class TelemetrySpec(Frozen):
    """Monitoring settings shared by every block (`/metrics` is always served)."""

    metrics: bool = Field(
        True,
        description="per-request metrics, tap and access log; false skips the counting layers "
        "on both sides: what the benchmark's off side runs",
    )
    tracing: TracingSpec = Field(TracingSpec(), description="OpenTelemetry traces")

    @model_validator(mode="after")
    def _layers(self) -> TelemetrySpec:
        if not self.metrics and self.tracing.exporter != "none":
            raise ValueError(
                "'metrics: false' leaves out the layers that make spans too: "
                "set 'tracing.exporter: none' or 'metrics: true'"
            )
        return self


class TokenSpec(Frozen):
    """Per-hop request tokens: a JWT the caller signs with its SVID key for each call."""

    mode: Literal["off", "optional", "required"] = Field(
        "off", description="`required`: every call between blocks carries a valid token"
    )
    ttl: Duration = Field(60.0, description="lifetime of one token")
    skew: Duration = Field(5.0, description="clock skew tolerated on iat/exp")
    replay_cache: int = Field(
        100_000, ge=1000, le=10_000_000, description="token ids remembered per instance"
    )
    reuse: bool = Field(
        True,
        description="a caller sends one token per target and end user for half its ttl, "
        "accepted again only over mTLS from the identity it names; false: a fresh single-use "
        "token per try",
    )


class EndUserSpec(Frozen):
    """End-user JWTs of an external identity provider, verified where a call enters the mesh."""

    jwks_file: str = Field(description="JWKS file of the provider (relative to the spec's folder)")
    issuer: str | None = Field(None, description="required `iss`")
    audience: str | None = Field(None, description="required `aud`")
    required: bool = Field(False, description="refuse calls into the mesh without a user token")
    algorithms: tuple[str, ...] = Field(
        ("RS256", "ES256", "EdDSA"), description="accepted signature algorithms"
    )


class AuthzRule(Frozen):
    """One authorization rule; every field it sets must match (unset fields match anything)."""

    name: str = Field(min_length=1, description="named in audit lines and `policy check`")
    action: Verdict = Field(description="what a match decides")
    source: tuple[str, ...] = Field(
        (),
        alias="from",
        description="caller globs: a block name, `client/<name>` or a full SPIFFE ID",
    )
    to: tuple[str, ...] = Field((), description="target block globs")
    patterns: tuple[str, ...] = Field((), description="pattern globs (x-eblocks-pattern)")
    methods: tuple[str, ...] = Field((), description="HTTP methods")
    paths: tuple[str, ...] = Field((), description="path globs, e.g. `/admin/*`")
    claims: dict[str, str] = Field(
        default_factory=dict, description="end-user claim globs, e.g. {role: admin}"
    )


class AuthorizationSpec(Frozen):
    """Rules checked inbound before the handler: any deny wins, then any allow, else default."""

    default: Verdict = Field("allow", description="when no rule matches (per block: security)")
    rules: tuple[AuthzRule, ...] = Field((), description="rules, each with a unique name")

    @model_validator(mode="after")
    def _unique(self) -> AuthorizationSpec:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


class AnomalySpec(Frozen):
    """Quarantine of misbehaving sources (per SPIFFE ID); defaults in docs/security.md."""

    enabled: bool = Field(True, description="watch sources and quarantine on a threshold")
    window: Duration = Field(10.0, description="sliding window of the counts")
    max_auth_failures: int = Field(20, ge=1, description="authentication failures per window")
    max_denials: int = Field(50, ge=1, description="authorization denials per window")
    max_error_ratio: float | None = Field(
        0.9, gt=0, le=1, description="share of 4xx mesh errors (null: off)"
    )
    min_requests: int = Field(50, ge=1, description="requests before the error ratio counts")
    rate_factor: float | None = Field(
        None, gt=1, description="quarantine at this many times the EWMA rate (null: off)"
    )
    min_rate: int = Field(100, ge=1, description="req/s below which the rate check never fires")
    ewma_alpha: float = Field(0.1, gt=0, le=1, description="weight of the last second in the EWMA")
    baseline_seconds: int = Field(30, ge=1, description="seconds of history before rate checks")
    cooldown: Duration = Field(30.0, description="how long a quarantined source is refused")
    readmit: Duration = Field(30.0, description="ramp from 0 to 100 % admitted after cool-down")
    max_sources: int = Field(10_000, ge=16, description="sources remembered at most")

    @model_validator(mode="after")
    def _window(self) -> AnomalySpec:
        if self.window < 1:
            raise ValueError("'window' must be at least 1s")
        return self


class SecuritySpec(Frozen):
    """Mesh identity, mTLS, request tokens and authorization (docs/security.md)."""

    trust_domain: str = Field(
        "eblocks.local",
        pattern=r"^[a-z0-9._-]{1,255}$",
        description="the SPIFFE trust domain of every identity in the mesh",
    )
    mtls: MtlsMode = Field(
        "strict",
        description="strict, permissive (plaintext too), ingress (TLS, client cert optional), "
        "disable",
    )
    svid_ttl: Duration = Field(86400.0, description="lifetime of an SVID; renewed at half")
    key_type: Literal["ecdsa-p256", "ed25519"] = Field(
        "ecdsa-p256", description="key type of a CA that `up` creates"
    )
    tokens: TokenSpec = Field(TokenSpec(), description="per-hop request tokens")
    end_user: EndUserSpec | None = Field(None, description="external end-user JWTs")
    authorization: AuthorizationSpec = Field(AuthorizationSpec(), description="access rules")
    anomaly: AnomalySpec = Field(AnomalySpec(), description="quarantine of misbehaving sources")

    @model_validator(mode="after")
    def _consistent(self) -> SecuritySpec:
        if self.svid_ttl < 60:
            raise ValueError("'svid_ttl' must be at least 60s")
        if self.tokens.mode != "off" and self.mtls == "disable":
            raise ValueError("request tokens are signed with the SVID: they need mtls")
        return self


@dataclass(frozen=True, slots=True)
class BlockSettings:
    """A block's effective settings: its own over the mesh defaults."""

    name: str
    replicas: int
    timeout: float
    retries: RetryPolicy
    max_body: int
    drain: float
    threads: int
    host: str
    port: int | None
    balancer: str = "round_robin"
    access_log: bool = False


class MeshSpec(Frozen):
    """A whole mesh: blocks, patterns and policies sharing one trust domain."""

    api_version: Literal["eblocks/v1"] = Field(alias="apiVersion", description="spec version")
    mesh: Name = Field(description="the mesh's name (a DNS label); names its state dir")
    description: str = ""
    defaults: Defaults = Field(Defaults(), description="settings every block inherits")
    blocks: dict[Name, BlockSpec] = Field(min_length=1, description="service kinds by name")
    patterns: dict[Name, PatternSpec] = Field(
        default_factory=dict, description="named compositions of blocks and patterns"
    )
    policies: Policies = Field(Policies(), description="traffic, security and scaling rules")
    discovery: DiscoverySpec = Field(
        DiscoverySpec(), description="how instances find each other (supervisor or gossip)"
    )
    telemetry: TelemetrySpec = Field(
        TelemetrySpec(),
        description="per-request metrics and tracing (`/metrics` is always served on the admin "
        "port)",
    )
    security: SecuritySpec = Field(
        SecuritySpec(), description="identity, mTLS, request tokens, authorization"
    )

    @model_validator(mode="before")
    @classmethod
    def _manager_handlers(cls, data: Any) -> Any:
        """A block that only manages workers may leave out its handler (docs/decisions.md)."""
        if not isinstance(data, dict) or not isinstance(data.get("blocks"), dict):
            return data
        patterns = data.get("patterns")
        if not isinstance(patterns, dict):
            patterns = {}
        # A manager named anywhere in a pattern counts, in a misspelt kind key or at the
        # wrong indent too: that pattern's own error is the one to show, not its manager's.
        managers = {
            manager
            for pattern in patterns.values()
            if isinstance(pattern, dict)
            for body in (pattern, *pattern.values())
            if isinstance(body, dict) and isinstance(manager := body.get("manager"), str)
        }
        blocks = dict(data["blocks"])
        for name, block in blocks.items():
            if name in managers and isinstance(block, dict | None):
                block = block or {}
                entry = ("handler", "app", "external")
                if all(block.get(key) is None for key in entry):
                    blocks[name] = {**block, "handler": MANAGER_HANDLER}
        return {**data, "blocks": blocks}

    def settings(self, block: str) -> BlockSettings:
        return resolve_settings(block, self.blocks[block], self.defaults)


def resolve_settings(name: str, block: BlockSpec | None, defaults: Defaults) -> BlockSettings:
    """A block's effective settings: each field it sets over the mesh default."""
    own = block.model_dump(exclude_none=True) if block is not None else {}
    return BlockSettings(
        name=name,
        replicas=own.get("replicas", defaults.replicas),
        timeout=own.get("timeout", defaults.timeout),
        retries=block.retries if block is not None and block.retries else defaults.retries,
        max_body=own.get("max_body", defaults.max_body),
        drain=own.get("drain", defaults.drain),
        threads=own.get("threads", defaults.threads),
        host=defaults.host,
        port=own.get("port"),
        balancer=own.get("balancer", defaults.balancer),
        access_log=own.get("access_log", defaults.access_log),
    )
