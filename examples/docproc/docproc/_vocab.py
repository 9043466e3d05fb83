"""Vocabulary and sentence templates for the corpus generator (data only).

Each topic has its own nouns, adjectives, verbs, teams and sentence templates,
so that a document's words say what it is about; generic templates and
vocabulary are shared. Slots in templates: ``{N}``/``{N2}`` topic nouns, ``{Ns}``
plural noun, ``{A}`` topic adjective, ``{G}`` generic adjective, ``{V}`` verb
(base form), ``{Vs}`` verb (third person), ``{TEAM}``, ``{PERSON}``, ``{ORG}``,
``{NUM}``, ``{PCT}``, ``{DATE}``, ``{PERIOD}``, ``{ADV}``, ``{PLACE}``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CARRIERS",
    "DOMAINS",
    "FIRST_NAMES",
    "FOREIGN",
    "GENERIC",
    "LAST_NAMES",
    "ORGS",
    "PLACES",
    "TOPICS",
    "ForeignLanguage",
    "Topic",
]


@dataclass(frozen=True, slots=True)
class Topic:
    """Word lists and templates that make a document read as one topic."""

    titles: tuple[str, ...]
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    verbs: tuple[str, ...]
    teams: tuple[str, ...]
    templates: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ForeignLanguage:
    """A smaller grammar for documents in Spanish, French or German."""

    templates: tuple[str, ...]
    periods: tuple[str, ...]
    titles: tuple[str, ...]
    nouns: dict[str, tuple[str, ...]]
    carriers: dict[str, tuple[str, ...]]


def _t(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(",") if w.strip())


TOPICS: dict[str, Topic] = {
    "finance": Topic(
        titles=_t(
            "Quarterly Liquidity Review, Treasury Memo, Budget Variance Report,"
            "Credit Risk Assessment, Audit Findings Summary, Capital Allocation Plan,"
            "Invoice Reconciliation Notes, Cash Flow Forecast"
        ),
        nouns=_t(
            "budget, invoice, ledger, liquidity, dividend, revenue, expense, audit, forecast,"
            "portfolio, equity, bond, interest rate, credit line, cash flow, balance sheet,"
            "accrual, depreciation, margin, reconciliation, payment, treasury, tax liability,"
            "capital expenditure, working capital, hedge, valuation, covenant, receivable,"
            "payable, subsidiary, earnings"
        ),
        adjectives=_t(
            "fiscal, quarterly, audited, consolidated, operating, net, deferred, projected,"
            "taxable, outstanding, unrealised, annual"
        ),
        verbs=_t(
            "reconcile, audit, forecast, allocate, invoice, amortise, hedge, approve, review,"
            "refinance, consolidate, report"
        ),
        teams=_t("treasury, accounts payable, financial planning, internal audit, controlling"),
        templates=(
            "Operating margin reached {PCT} in {PERIOD}, against a forecast of {PCT2}.",
            "The {TEAM} team will {V} the {N} before the board meeting on {DATE}.",
            "Outstanding receivables total {MONEY}, of which {PCT} are older than ninety days.",
            "We expect the {A} {N} to improve once the {N2} is refinanced.",
            "Capital expenditure for {PERIOD} stays within the approved budget of {MONEY}.",
            "The auditors asked for supporting documents for every {N} above {MONEY}.",
        ),
    ),
    "health": Topic(
        titles=_t(
            "Patient Discharge Summary, Clinical Trial Update, Ward Staffing Report,"
            "Medication Safety Review, Radiology Consultation Notes, Outpatient Care Plan,"
            "Infection Control Bulletin, Cardiology Referral"
        ),
        nouns=_t(
            "patient, diagnosis, treatment, dosage, prescription, symptom, clinic, ward,"
            "physician, nurse, therapy, vaccine, infection, allergy, blood pressure,"
            "medical record, referral, discharge, biopsy, radiology report, outpatient visit,"
            "care plan, medication, surgery, admission, triage, cholesterol level, antibiotic,"
            "chronic condition, follow-up appointment"
        ),
        adjectives=_t(
            "clinical, chronic, acute, postoperative, diagnostic, cardiac, paediatric,"
            "respiratory, intravenous, preventive, therapeutic, elevated"
        ),
        verbs=_t(
            "diagnose, prescribe, monitor, treat, examine, admit, discharge, vaccinate,"
            "refer, screen, administer, evaluate"
        ),
        teams=_t("cardiology, oncology, emergency care, nursing, pharmacy"),
        templates=(
            "The patient reported {A} symptoms and was admitted to the {TEAM} ward on {DATE}.",
            "Blood pressure remained stable at {BP} throughout the observation period.",
            "The attending physician will {V} the {N} and adjust the dosage if needed.",
            "A follow-up appointment is scheduled for {DATE} to review the {N}.",
            "Laboratory results showed a {A} {N2}, so a second biopsy was requested.",
            "The {TEAM} team recommends continuing the {A} therapy for {NUM} weeks.",
        ),
    ),
    "legal": Topic(
        titles=_t(
            "Contract Amendment Draft, Litigation Status Memo, Non-Disclosure Agreement,"
            "Compliance Opinion, Settlement Terms Summary, Regulatory Filing Notes,"
            "Intellectual Property Review, Data Processing Agreement"
        ),
        nouns=_t(
            "contract, clause, liability, indemnity, plaintiff, defendant, court, counsel,"
            "settlement, jurisdiction, statute, arbitration, breach, warranty, litigation,"
            "compliance, regulation, agreement, amendment, trademark, patent, license,"
            "confidentiality obligation, termination notice, governing law, subpoena,"
            "injunction, hearing, testimony, due diligence"
        ),
        adjectives=_t(
            "contractual, binding, statutory, confidential, enforceable, material,"
            "exclusive, regulatory, judicial, limited, prior, written"
        ),
        verbs=_t(
            "negotiate, draft, terminate, enforce, indemnify, litigate, comply, waive,"
            "amend, disclose, arbitrate, license"
        ),
        teams=_t("legal affairs, compliance, litigation, contracts, privacy"),
        templates=(
            "Under clause {NUM}, either party may {V} the agreement with thirty days of notice.",
            "Counsel for the defendant filed a motion regarding the {N} on {DATE}.",
            "The {A} {N} survives termination for a period of {NUM} years.",
            "Any dispute shall be settled by arbitration under the governing law of {PLACE}.",
            "The {TEAM} team must review every {N} before it becomes binding.",
            "The court scheduled a hearing on the {N} and the related {N2} for {DATE}.",
        ),
    ),
    "hr": Topic(
        titles=_t(
            "Performance Review Cycle, Hiring Plan, Employee Onboarding Checklist,"
            "Compensation Benchmark, Leave Policy Update, Workforce Planning Memo,"
            "Training Programme Outline, Exit Interview Summary"
        ),
        nouns=_t(
            "employee, candidate, salary, payroll, onboarding, recruitment, performance review,"
            "promotion, benefit, pension, vacancy, interview, contract of employment, training,"
            "headcount, appraisal, leave request, overtime, bonus, job description, retention,"
            "workforce, manager, probation period, grievance, diversity target, shift schedule,"
            "compensation band"
        ),
        adjectives=_t(
            "annual, part-time, full-time, remote, junior, senior, probationary, internal,"
            "flexible, competitive, mandatory, parental"
        ),
        verbs=_t(
            "hire, onboard, promote, interview, train, recruit, appraise, mentor, retain,"
            "schedule, reward, approve"
        ),
        teams=_t("human resources, talent acquisition, payroll, people operations, learning"),
        templates=(
            "The {TEAM} team received {NUM} applications for the {A} vacancy.",
            "Each new employee completes the onboarding programme within {NUM} days.",
            "Annual performance reviews close on {DATE}, and promotions follow in {PERIOD}.",
            "Managers should {V} every {N} and record the outcome in the HR system.",
            "The {A} {N} policy now allows {NUM} additional days of leave.",
            "Staff turnover fell to {PCT} after the new {N} and {N2} measures.",
        ),
    ),
    "engineering": Topic(
        titles=_t(
            "Incident Postmortem, Release Notes, Architecture Decision Record,"
            "Deployment Runbook, Capacity Planning Review, API Migration Guide,"
            "Sprint Retrospective, Service Reliability Report"
        ),
        nouns=_t(
            "deployment, server, database, latency, throughput, microservice, pipeline,"
            "repository, release, rollback, load balancer, cache, container, cluster,"
            "configuration, endpoint, test suite, build, dependency, kernel, incident,"
            "monitoring alert, queue, schema migration, replica, commit, protocol, compiler,"
            "memory leak, certificate rotation"
        ),
        adjectives=_t(
            "distributed, scalable, redundant, asynchronous, automated, production,"
            "degraded, concurrent, stateless, backward-compatible, containerised, idle"
        ),
        verbs=_t(
            "deploy, refactor, benchmark, migrate, debug, provision, monitor, rollback,"
            "compile, configure, optimise, patch"
        ),
        teams=_t("platform, site reliability, backend, infrastructure, release engineering"),
        templates=(
            "Median latency rose to {NUM} ms after release {VERSION} reached production.",
            "The {TEAM} team will {V} the {N} during the maintenance window on {DATE}.",
            "We traced the {A} {N} to a misconfigured {N2} in the staging cluster.",
            "Throughput peaked at {NUM} requests per second with {PCT} CPU utilisation.",
            "Every commit now triggers the {N} and a {A} test suite before deployment.",
            "The rollback to version {VERSION} restored service in {NUM} minutes.",
        ),
    ),
    "marketing": Topic(
        titles=_t(
            "Campaign Performance Report, Brand Guidelines, Product Launch Plan,"
            "Social Media Calendar, Market Segmentation Study, Customer Survey Results,"
            "Content Strategy Brief, Pricing Research Summary"
        ),
        nouns=_t(
            "campaign, brand, audience, conversion rate, engagement, advertisement, influencer,"
            "newsletter, landing page, market share, customer segment, promotion, slogan,"
            "press release, click-through rate, social media post, loyalty programme, survey,"
            "competitor, launch event, funnel, impression, persona, sponsorship, webinar,"
            "customer journey, price point, retention campaign"
        ),
        adjectives=_t(
            "digital, organic, targeted, seasonal, viral, premium, omnichannel, creative,"
            "regional, promotional, loyal, engaging"
        ),
        verbs=_t(
            "launch, promote, target, advertise, segment, engage, rebrand, sponsor, measure,"
            "personalise, publish, position"
        ),
        teams=_t("brand, growth, content, digital marketing, communications"),
        templates=(
            "The {A} campaign reached {NUM} users and lifted the conversion rate to {PCT}.",
            "The {TEAM} team plans to {V} the new {N} in {PLACE} during {PERIOD}.",
            "Engagement on social media grew by {PCT} after the {N} went live.",
            "Survey respondents rated the {N} {NUM} out of ten on average.",
            "We will {V} the {A} {N} to the younger customer segment first.",
            "The press release for the {N} goes out on {DATE}.",
        ),
    ),
    "travel": Topic(
        titles=_t(
            "Travel Itinerary, Conference Trip Report, Expense Claim for Travel,"
            "Hotel Booking Confirmation, Visa Application Checklist, Relocation Guide,"
            "Corporate Travel Policy, Site Visit Schedule"
        ),
        nouns=_t(
            "flight, hotel, itinerary, boarding pass, passport, visa, luggage, airport,"
            "departure, arrival, reservation, layover, train ticket, car rental, check-in,"
            "travel insurance, per diem, terminal, destination, excursion, accommodation,"
            "shuttle, travel agent, seat upgrade, customs declaration, tour, timetable, voucher"
        ),
        adjectives=_t(
            "international, domestic, overnight, refundable, direct, economy, business-class,"
            "scenic, round-trip, delayed, guided, coastal"
        ),
        verbs=_t(
            "book, travel, depart, arrive, reserve, cancel, upgrade, explore, board, transfer,"
            "check, reimburse"
        ),
        teams=_t("travel desk, events, facilities, mobility, logistics"),
        templates=(
            "The {A} flight to {PLACE} departs at {TIME} and lands {NUM} hours later.",
            "Please {V} the hotel in {PLACE} before {DATE} to keep the corporate rate.",
            "The itinerary includes a {A} excursion and a visit to the {N2}.",
            "Travellers claim a per diem of {MONEY} for each night away from {PLACE}.",
            "The {TEAM} team can {V} the {N} if the conference dates change.",
            "Our train leaves {PLACE} at {TIME}, with a short layover in {PLACE2}.",
        ),
    ),
    "science": Topic(
        titles=_t(
            "Laboratory Notebook Summary, Research Proposal, Experimental Results,"
            "Grant Progress Report, Peer Review Response, Field Study Notes,"
            "Methods Section Draft, Instrument Calibration Log"
        ),
        nouns=_t(
            "hypothesis, experiment, sample, specimen, laboratory, measurement, spectrum,"
            "molecule, protein, genome, reagent, microscope, statistical model, dataset,"
            "control group, variable, catalyst, temperature gradient, observation, enzyme,"
            "isotope, simulation, peer review, publication, grant, calibration, particle,"
            "sediment core, cell culture, confidence interval"
        ),
        adjectives=_t(
            "empirical, experimental, statistical, molecular, significant, reproducible,"
            "peer-reviewed, theoretical, quantitative, thermal, genetic, controlled"
        ),
        verbs=_t(
            "measure, hypothesise, calibrate, synthesise, replicate, observe, analyse,"
            "sequence, simulate, publish, isolate, quantify"
        ),
        teams=_t("research, biochemistry, physics, genomics, field ecology"),
        templates=(
            "The {A} experiment confirmed the hypothesis with p < 0.0{DIGIT}.",
            "Each sample was measured {NUM} times at a temperature of {NUM2} kelvin.",
            "The {TEAM} group will {V} the {N} using the new spectrometer.",
            "Results were reproducible across {NUM} independent replicates.",
            "We observed a {A} shift in the {N} after adding the catalyst.",
            "The dataset and the statistical model will be published with the {N2}.",
        ),
    ),
}

GENERIC = {
    "templates": (
        "The {G} {N} {Vs} the {N2} according to the {TEAM} team.",
        "{PERSON} noted that the {N} needs a {G} review before {DATE}.",
        "In {PERIOD}, the {A} {N} changed by {PCT} compared with the previous period.",
        "We recommend that the {TEAM} team {V} the {N} {ADV}.",
        "The {N} and the {N2} remain the main priorities for {PERIOD}.",
        "{PERSON} will {V} the {A} {N} and share a summary with {PERSON2}.",
        "A {G} analysis of the {N} showed {NUM} open items.",
        "Please note that the {N} is {ADV} linked to the {A} {N2}.",
        "The next meeting about the {N} takes place in {PLACE} on {DATE}.",
        "Feedback from {ORG} suggests that the {N} {Vs} {ADV}.",
        "As discussed, the {TEAM} team owns the {N} until {DATE}.",
        "The {A} {Ns} were discussed at length, and {NUM} actions were agreed.",
        "{PERSON} from {ORG} asked whether the {N} could be finalised by {DATE}.",
        "The summary below covers the {N}, the {N2} and the expected next steps.",
    ),
    "adjectives": _t(
        "detailed, preliminary, careful, thorough, independent, formal, updated, final,"
        "broader, consistent, informal, revised, comprehensive, quick"
    ),
    "adverbs": _t(
        "as planned, without delay, carefully, in stages, where possible, by the end of the month,"
        "closely, promptly, on a weekly basis, in parallel"
    ),
    "periods": _t(
        "the first quarter, the second quarter, the third quarter, the fourth quarter,"
        "the last fiscal year, the coming months, the spring, the autumn, the last six weeks,"
        "the current period"
    ),
    "closings": _t("Kind regards, Best regards, Thank you, Sincerely, With thanks"),
}

FIRST_NAMES = _t(
    "Alice, Bruno, Carmen, David, Elena, Farid, Grace, Hugo, Ines, Jonas, Keiko, Liam,"
    "Marta, Noah, Olga, Pablo, Quinn, Rosa, Samir, Tanja, Umar, Vera, Wei, Ximena, Yusuf,"
    "Zoe, Amara, Bastien, Chiara, Dmitri, Emma, Felipe, Greta, Hana, Ivan, Julia, Kofi,"
    "Lucia, Mateo, Nadia, Oscar, Priya, Rafael, Sofia, Tomas, Ursula, Victor, Wanda"
)
LAST_NAMES = _t(
    "Garcia, Smith, Müller, Rossi, Dubois, Nakamura, Kowalski, Silva, Johnson, Fernandez,"
    "Schmidt, Martin, Lopez, Brown, Novak, Jensen, Okafor, Petrov, Moreau, Tanaka, Walker,"
    "Romero, Becker, Costa, Nguyen, Haddad, Larsen, Ortega, Fischer, Bianchi, Clarke, Ruiz,"
    "Weber, Santos, Kim, Andersson, Morales, Keller, Ward, Navarro"
)
ORGS = _t(
    "Northwind Traders, Contoso Ltd, Fabrikam Inc, Globex Corporation, Initech, Umbrella Health,"
    "Tailspin Toys, Wide World Importers, Litware Labs, Adventure Works, Proseware, Woodgrove Bank,"
    "Blue Yonder Airlines, Coho Vineyard, Lucerne Publishing, Margie's Travel"
)
DOMAINS = _t(
    "example.com, example.org, northwind.io, contoso.com, fabrikam.net, globex.co.uk, initech.de,"
    "woodgrove-bank.com, litware.es, proseware.fr, mail.example.net, health.example.org"
)
PLACES = _t(
    "Madrid, Lisbon, Berlin, Paris, London, Dublin, Rome, Vienna, Prague, Warsaw, Oslo,"
    "Toronto, Boston, Chicago, Seattle, Tokyo, Singapore, Sydney, Nairobi, Mexico City"
)

# Sentences that carry a sensitive item (``{v}``) in English, per type.
CARRIERS: dict[str, tuple[str, ...]] = {
    "email": (
        "For questions, write to {v} before the deadline.",
        "The signed copy was sent to {v} this morning.",
        "Contact: {v}",
        "Please copy {v} on any further correspondence.",
        "Replies go to the shared mailbox <{v}>.",
        "The form (signed by the applicant, {v}) arrived on time.",
    ),
    "phone": (
        "You can reach the coordinator on {v} during office hours.",
        "Phone: {v}",
        "For urgent matters call {v} and ask for the duty officer.",
        "The hotline number is {v}.",
        "Our duty manager (mobile {v}) covers the weekend.",
        "Phone/fax: {v}; please call before sending documents.",
    ),
    "card": (
        "The deposit was charged to card {v}.",
        "Card number: {v}",
        "Please refund the amount to the card ending in the number {v}.",
        "Payment details on file: {v}, valid until the end of next year.",
    ),
    "iban": (
        "Transfer the balance to IBAN {v} by the end of the week.",
        "Bank account (IBAN): {v}",
        "The supplier changed its account to {v}.",
        "Salary is paid into {v} on the last working day.",
    ),
    "national_id": (
        "The employee's identification number is {v}.",
        "ID: {v}",
        "Identity document {v} was verified at the front desk.",
        "Please quote reference {v} on the enclosed form.",
    ),
    "secret": (
        "Config snippet: {v}",
        "The deployment script still contains {v}, which must be rotated.",
        "Temporary credentials: {v}",
    ),
}

FOREIGN: dict[str, ForeignLanguage] = {
    "es": ForeignLanguage(
        templates=(
            "El equipo de {N} revisó el informe sobre {N2} durante {PERIOD}.",
            "Según {PERSON}, el indicador de {N} aumentó un {PCT} en {PERIOD}.",
            "La próxima reunión sobre {N} será en {PLACE} el {DATE}.",
            "Es necesario que el departamento de {N} presente los datos de {N2} antes del {DATE}.",
            "Los resultados de {N} fueron analizados por {PERSON} y {PERSON2}.",
            "Hay {NUM} tareas pendientes relacionadas con {N} y con {N2}.",
            "Por favor, confirme que la información de {N} está actualizada.",
            "Este documento resume las decisiones tomadas sobre {N} para el próximo año.",
        ),
        periods=_t("el primer trimestre, el último año, los próximos meses, la primavera"),
        titles=_t("Informe mensual, Acta de la reunión, Resumen ejecutivo, Nota interna"),
        nouns={
            "finance": _t("presupuesto, facturas, tesorería, auditoría, impuestos, liquidez"),
            "health": _t("pacientes, diagnóstico, tratamiento, medicamentos, consultas, vacunas"),
            "legal": _t("contratos, cláusulas, litigios, cumplimiento normativo, tribunal"),
            "hr": _t("recursos humanos, nóminas, contratación, empleados, formación"),
            "engineering": _t("servidores, despliegues, base de datos, incidencias, software"),
            "marketing": _t("campañas, publicidad, clientes, marca, redes sociales"),
            "travel": _t("vuelos, hoteles, reservas, viajes, pasaportes, equipaje"),
            "science": _t("experimentos, muestras, laboratorio, investigación, hipótesis"),
        },
        carriers={
            "email": ("Para cualquier consulta, escriba a {v}.",),
            "phone": ("Teléfono de contacto: {v}",),
            "card": ("El pago se realizó con la tarjeta {v}.",),
            "iban": ("Realice la transferencia a la cuenta {v}.",),
            "national_id": ("Documento de identidad: {v}",),
            "secret": ("Credenciales temporales: {v}",),
        },
    ),
    "fr": ForeignLanguage(
        templates=(
            "L'équipe chargée de {N} a examiné le rapport sur {N2} pendant {PERIOD}.",
            "Selon {PERSON}, l'indicateur de {N} a augmenté de {PCT} pendant {PERIOD}.",
            "La prochaine réunion sur {N} aura lieu à {PLACE} le {DATE}.",
            "Il est nécessaire que le service de {N} présente les données de {N2} avant le {DATE}.",
            "Les résultats concernant {N} ont été analysés par {PERSON} et {PERSON2}.",
            "Il reste {NUM} tâches en cours liées à {N} et à {N2}.",
            "Merci de confirmer que les informations sur {N} sont à jour.",
            "Ce document résume les décisions prises pour {N} pour l'année prochaine.",
        ),
        periods=_t("le premier trimestre, la dernière année, les prochains mois, le printemps"),
        titles=_t("Rapport mensuel, Compte rendu de réunion, Note de synthèse, Note interne"),
        nouns={
            "finance": _t("budget, factures, trésorerie, audit, impôts, liquidités"),
            "health": _t("patients, diagnostic, traitement, médicaments, consultations, vaccins"),
            "legal": _t("contrats, clauses, litiges, conformité, tribunal"),
            "hr": _t("ressources humaines, paie, recrutement, salariés, formation"),
            "engineering": _t("serveurs, déploiements, base de données, incidents, logiciel"),
            "marketing": _t("campagnes, publicité, clients, marque, réseaux sociaux"),
            "travel": _t("vols, hôtels, réservations, voyages, passeports, bagages"),
            "science": _t("expériences, échantillons, laboratoire, recherche, hypothèses"),
        },
        carriers={
            "email": ("Pour toute question, écrivez à {v}.",),
            "phone": ("Téléphone : {v}",),
            "card": ("Le paiement a été effectué avec la carte {v}.",),
            "iban": ("Veuillez effectuer le virement sur le compte {v}.",),
            "national_id": ("Numéro d'identité : {v}",),
            "secret": ("Identifiants temporaires : {v}",),
        },
    ),
    "de": ForeignLanguage(
        templates=(
            "Das Team für {N} hat den Bericht über {N2} im Laufe {PERIOD} geprüft.",
            "Laut {PERSON} ist der Wert für {N} im Laufe {PERIOD} um {PCT} gestiegen.",
            "Die nächste Besprechung zu {N} findet am {DATE} in {PLACE} statt.",
            "Die Abteilung für {N} muss die Daten zu {N2} bis zum {DATE} vorlegen.",
            "Die Ergebnisse zu {N} wurden von {PERSON} und {PERSON2} ausgewertet.",
            "Es gibt noch {NUM} offene Aufgaben im Zusammenhang mit {N} und {N2}.",
            "Bitte bestätigen Sie, dass die Angaben zu {N} aktuell sind.",
            "Dieses Dokument fasst die Entscheidungen über {N} für das nächste Jahr zusammen.",
        ),
        periods=_t("des ersten Quartals, des letzten Jahres, der nächsten Monate, des Frühjahrs"),
        titles=_t("Monatsbericht, Besprechungsprotokoll, Zusammenfassung, Interne Notiz"),
        nouns={
            "finance": _t("Budget, Rechnungen, Liquidität, Prüfung, Steuern, Bilanz"),
            "health": _t("Patienten, Diagnose, Behandlung, Medikamente, Sprechstunde, Impfungen"),
            "legal": _t("Verträge, Klauseln, Rechtsstreit, Compliance, Gericht"),
            "hr": _t("Personal, Gehaltsabrechnung, Einstellungen, Mitarbeiter, Weiterbildung"),
            "engineering": _t("Server, Bereitstellung, Datenbank, Störungen, Software"),
            "marketing": _t("Kampagnen, Werbung, Kunden, Marke, soziale Medien"),
            "travel": _t("Flüge, Hotels, Buchungen, Reisen, Reisepässe, Gepäck"),
            "science": _t("Experimente, Proben, Labor, Forschung, Hypothesen"),
        },
        carriers={
            "email": ("Bei Fragen schreiben Sie bitte an {v}.",),
            "phone": ("Telefon: {v}",),
            "card": ("Die Zahlung erfolgte mit der Karte {v}.",),
            "iban": ("Bitte überweisen Sie den Betrag auf das Konto {v}.",),
            "national_id": ("Ausweisnummer: {v}",),
            "secret": ("Temporäre Zugangsdaten: {v}",),
        },
    ),
}
