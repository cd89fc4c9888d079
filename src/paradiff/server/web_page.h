// The page GET / serves: src/paradiff/server/web/index.html, compiled in at build time
// (cmake/WebPage.cmake), plain HTML and JavaScript with no external resources.
#pragma once

#include <string_view>

namespace paradiff::server {

std::string_view web_page();

}  // namespace paradiff::server
