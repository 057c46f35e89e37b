"""The privacy center: a customer's own section of the web app (`/privacy`).

A customer arrives with a one-time link from the organization's front end, which the
page exchanges (on a button press, never on the GET a mail scanner makes) for a token
bound to their subject; from then on every page calls the vault as that customer.
"""
