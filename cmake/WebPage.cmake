# paradiff serve's page (src/paradiff/server/web/index.html) becomes a string in the server's
# library: the HTML stays a real file to edit, and the binary needs no file at run time. CMake
# reads it at configure time and re-runs when it changes.
set(PARADIFF_WEB_PAGE ${PROJECT_SOURCE_DIR}/src/paradiff/server/web/index.html)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PARADIFF_WEB_PAGE})
file(READ ${PARADIFF_WEB_PAGE} PARADIFF_WEB_PAGE_TEXT)
configure_file(${PROJECT_SOURCE_DIR}/cmake/web_page_text.cc.in
               ${PROJECT_BINARY_DIR}/generated/web_page_text.cc @ONLY)
target_sources(paradiff_lib_server PRIVATE ${PROJECT_BINARY_DIR}/generated/web_page_text.cc)
