import socket

from devmesh.ports import LOWEST, ephemeral_start, free_ports, is_free


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range():
    ports = free_ports(50)
    assert len(set(ports)) == 50
    assert all(LOWEST <= port < ephemeral_start() for port in ports)
    assert all(is_free(port) for port in ports)


def test_a_bound_port_is_not_free():
    with socket.socket() as held:
        held.bind(("127.0.0.1", free_ports(1)[0]))
        held.listen()
        assert not is_free(held.getsockname()[1])
