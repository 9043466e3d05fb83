"""What rendered instances need to verify `eblocks apply`'s bundles: a public key and a run id.

Locally the supervisor keeps the policy key pair and the run id in the state
dir (`eblocks.policies.keys`). A cluster gets only their public half, in the
ConfigMap ``<mesh>-policy`` (nothing there is secret), mounted read-only at
`POLICY_DIR` and named to the instance with ``--policy-dir``::

    operator's <state>/<mesh>/policy/   signing.key (stays here), signing.pub, run
                |  eblocks render --state-dir <state>
                v
    ConfigMap <mesh>-policy             signing.pub, run  ->  /var/run/eblocks/policy/

The run id is decided when rendering, read from the operator's state dir
(made once, changed only by ``eblocks render --new-run``), so rendering stays
deterministic and `eblocks apply --state-dir <state>` signs for the run the
pods hold. A restarted pod reads the same run, starts at the spec's policies
and fetches the newest bundle from a peer (`eblocks.policies.sync`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eblocks.deploy.names import POLICY_DIR, Names
from eblocks.errors import RenderError, SecurityError
from eblocks.policies.keys import ensure_signing_key, new_run, public_key_pem, read_run

__all__ = ["PolicyTrust"]


@dataclass(frozen=True, slots=True)
class PolicyTrust:
    """The policy public key (PEM) and the run id every rendered instance verifies with."""

    public_key: str
    run: str

    def __post_init__(self) -> None:
        if "BEGIN PUBLIC KEY" not in self.public_key:
            raise RenderError("policy trust: 'public_key' must be a PEM public key")
        if not self.run or not self.run.isalnum():
            raise RenderError(f"policy trust: 'run' must be a non-empty id, got {self.run!r}")

    @classmethod
    def from_state(cls, state: Path, *, fresh_run: bool = False) -> PolicyTrust:
        """The trust of the mesh whose state dir is ``state``; key pair and run made if missing.

        ``fresh_run``: start a new run (bundles of the current one are refused from then on).
        """
        try:
            ensure_signing_key(state)
            run = read_run(state)
            if fresh_run or not run:
                run = new_run(state)
            pem = public_key_pem(state).decode("ascii")
        except (OSError, SecurityError, UnicodeDecodeError) as exc:
            raise RenderError(f"policy signing key in {state}: {exc}") from exc
        return cls(pem, run)

    @property
    def digest(self) -> str:
        """Changes with the key or the run: pods roll to read the new one."""
        return hashlib.sha256(f"{self.public_key}\n{self.run}".encode()).hexdigest()

    def config_map(self, names: Names) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": names.policy_config,
                "namespace": names.namespace,
                "labels": names.labels("config"),
            },
            "data": {"run": self.run + "\n", "signing.pub": self.public_key},
        }

    @staticmethod
    def volume(names: Names) -> dict[str, Any]:
        return {"name": "policy", "configMap": {"name": names.policy_config}}

    @staticmethod
    def mount() -> dict[str, Any]:
        return {"name": "policy", "mountPath": POLICY_DIR, "readOnly": True}

    @staticmethod
    def args() -> list[str]:
        """Appended to the instance's arguments: where it reads the key and the run."""
        return ["--policy-dir", POLICY_DIR]
