"""The `[sealing]` table: how each published record is sealed, and to whom it is encrypted."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Policy = Literal["plain", "signed", "signed+encrypted"]


class RecipientConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # A P-256 public key: PEM (SubjectPublicKeyInfo) or a JWK (.jwk / .json), absolute path.
    public_key: str = Field(pattern=r"^/")


class RuleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    match: str = Field(min_length=1)  # fnmatch glob over the stream "provider/service/resource"
    policy: Policy
    recipients: list[str] = []  # names from [sealing.recipients]; default: default_recipients


class SealingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    default: Policy = "signed"
    rules: list[RuleConfig] = []  # first match wins
    recipients: dict[str, RecipientConfig] = {}
    default_recipients: list[str] = []  # for "signed+encrypted" rules that name none
    # The short-lived signing key: new at boot and every `rotate_seconds`; its certificate stays valid
    # `grace_seconds` longer, so a record sealed just before a rotation still verifies.
    rotate_seconds: int = Field(3600, ge=60, le=86_400)
    grace_seconds: int = Field(300, ge=0, le=3600)
    # Put the key certificate into every record's protected header: each record verifies on its own, with
    # nothing but the device's identity key (about 700 bytes more per record). Off: consumers take it
    # from the device's meta (JoseSealer.certificate).
    embed_certificate: bool = True
    # Sequence numbers are reserved on disk in blocks, so they never repeat after a restart or a crash.
    sequence_block: int = Field(10_000, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _recipients_exist(self) -> SealingConfig:
        names = [*self.default_recipients, *(r for rule in self.rules for r in rule.recipients)]
        unknown = sorted(set(names) - set(self.recipients))
        if unknown:
            raise ValueError(
                f"unknown recipient(s) {', '.join(unknown)}: define them under [sealing.recipients]"
            )
        encrypting = [rule for rule in self.rules if rule.policy == "signed+encrypted"]
        if (self.default == "signed+encrypted" or any(not r.recipients for r in encrypting)) and not (
            self.default_recipients
        ):
            raise ValueError(
                "'signed+encrypted' needs recipients: set default_recipients or the rule's recipients"
            )
        return self
