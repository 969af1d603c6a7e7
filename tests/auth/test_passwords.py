"""argon2id hashing and the password policy."""

from __future__ import annotations

import argon2
import pytest

from callcenter.auth.passwords import (
    Passwords,
    WeakPassword,
    check_password_policy,
    default_passwords,
    make_passwords,
)
from callcenter.errors import InvalidInput


async def test_hash_is_argon2id_and_verifies(passwords: Passwords) -> None:
    hashed = await passwords.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert await passwords.verify(hashed, "correct horse battery")
    assert not await passwords.verify(hashed, "correct horse batterY")


async def test_given_a_garbage_hash_then_verify_is_false(passwords: Passwords) -> None:
    assert not await passwords.verify("not-a-hash", "whatever password")
    assert passwords.needs_rehash("not-a-hash")


async def test_given_other_parameters_then_needs_rehash(passwords: Passwords) -> None:
    stronger = make_passwords(time_cost=2, memory_cost=16, parallelism=1)
    hashed = await passwords.hash("correct horse battery")
    assert stronger.needs_rehash(hashed)
    assert not passwords.needs_rehash(hashed)
    assert await stronger.verify(hashed, "correct horse battery")


def test_production_keeps_the_argon2_cffi_defaults() -> None:
    assert not default_passwords().needs_rehash(argon2.PasswordHasher().hash("x"))


def test_only_argon2id_is_accepted() -> None:
    with pytest.raises(ValueError, match="argon2id"):
        Passwords(argon2.PasswordHasher(type=argon2.Type.I, memory_cost=8, parallelism=1))


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 10 characters"),
        ("123456789012", "digits only"),
        ("Zhang.San.01", "same as the username"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_weak_passwords_are_refused(password: str, reason: str) -> None:
    with pytest.raises(WeakPassword, match=reason) as info:
        check_password_policy(password, "zhang.san.01")
    assert isinstance(info.value, InvalidInput)
    assert info.value.status_code == 400


@pytest.mark.parametrize("password", ["abcdefghij", "1234567890a", "长城长城长城长城长城"])
def test_acceptable_passwords_pass(password: str) -> None:
    check_password_policy(password, "zhangsan")
