from service.secrets import fingerprint

KEY = "msgf_live_" + "0123456789abcdef" * 4


def test_a_fingerprint_is_stable_and_shows_no_part_of_the_secret() -> None:
    name = fingerprint(KEY)

    assert name == fingerprint(KEY)
    assert name != fingerprint(KEY + "x")
    assert all(KEY[i : i + 6] not in name for i in range(len(KEY) - 5))
