// /docs: Swagger UI over this server's /openapi.json. A classic script (the bundle defines a
// global), kept out of the page so that the Content-Security-Policy needs no inline script.
// No validator badge: it would load an image from another site.
window.addEventListener('DOMContentLoaded', () => {
  window.ui = window.SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
  });
});
