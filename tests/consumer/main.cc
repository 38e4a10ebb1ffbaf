// A C++17 consumer of an installed weft through weft.hpp: built by
// tests/install_test.sh with pkg-config and with find_package(weft).
// Prints "ok".
#include <weft.hpp>

#include <cstdio>
#include <stdexcept>
#include <string>

int main()
{
    long sum = 0;
    std::string caught;
    try {
        weft::run([&] {
            weft::channel<std::string> ch(4);
            weft::nursery n;
            auto len = n.spawn([&ch] {
                long total = 0;
                std::string s;
                while (ch.recv(s) == 0)
                    total += (long)s.size();
                return total;
            });
            for (int i = 0; i < 100; i++)
                if (ch.send(std::string(i % 40, 'x')) != 0)
                    break;
            ch.close();
            sum = len.get();
            n.spawn([] { throw std::runtime_error("from a child"); });
        }); // the nursery's destructor rethrows, then weft::run
    } catch (const std::runtime_error &e) {
        caught = e.what();
    }
    long want = 0;
    for (int i = 0; i < 100; i++)
        want += i % 40;
    if (sum != want || caught != "from a child") {
        std::fprintf(stderr, "consumer (C++): sum %ld (want %ld), caught '%s'\n", sum, want,
                     caught.c_str());
        return 1;
    }
    std::printf("ok\n");
    return 0;
}
